import assert from "node:assert/strict";
import fc from "fast-check";
import { CodecError } from "../../domain/codecs/codec_error.ts";
import { xbzrle } from "../../domain/codecs/xbzrle.ts";
import { PAGE, throwsCodec } from "../codec_helpers.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
const opts = { seed, numRuns: 300 };

/** The delta as the format defines it, byte by byte (the spec, written the slow way). */
function reference(old: Uint8Array, cur: Uint8Array): number[] {
  const out: number[] = [];
  const uleb = (n: number) => {
    do {
      out.push((n & 0x7f) | (n >= 0x80 ? 0x80 : 0));
      n >>>= 7;
    } while (n > 0);
  };
  let i = 0;
  while (i < cur.length) {
    const z = i;
    while (i < cur.length && old[i] === cur[i]) i++;
    if (i === cur.length) break;
    const nz = i;
    while (i < cur.length && old[i] !== cur[i]) i++;
    uleb(nz - z);
    uleb(i - nz);
    for (let k = nz; k < i; k++) out.push(cur[k]);
  }
  return out;
}

/** A copy of `src` at byte offset `at` of a fresh buffer (tests unaligned views). */
function placed(src: Uint8Array, at: number): Uint8Array {
  const b = new Uint8Array(src.length + at + 8);
  b.set(src, at);
  return b.subarray(at, at + src.length);
}

const patch = fc.record({
  at: fc.nat(PAGE - 1),
  bytes: fc.uint8Array({ minLength: 1, maxLength: 200 }),
});
/** An old page and a new one: a few patches, a dense scatter, or a whole new page. */
const pagePair = fc.tuple(
  fc.uint8Array({ minLength: PAGE, maxLength: PAGE }),
  fc.oneof(
    fc.array(patch, { maxLength: 30 }).map((ps) => ({ kind: "patches" as const, ps })),
    fc.record({ every: fc.integer({ min: 1, max: 9 }), value: fc.nat(255) }).map((d) => ({
      kind: "scatter" as const,
      ...d,
    })),
    fc.constant({ kind: "fresh" as const }),
  ),
  fc.uint8Array({ minLength: PAGE, maxLength: PAGE }),
).map(([old, change, fresh]) => {
  const cur = old.slice();
  if (change.kind === "patches") {
    for (const p of change.ps) cur.set(p.bytes.subarray(0, PAGE - p.at), p.at);
  } else if (change.kind === "scatter") {
    for (let i = 0; i < PAGE; i += change.every) cur[i] = (cur[i] + 1 + change.value % 255) & 0xff;
  } else {
    cur.set(fresh);
  }
  return { old, cur };
});

Deno.test("xbzrle: encode matches the format byte for byte, overflows exactly, round-trips", () => {
  fc.assert(
    fc.property(pagePair, fc.integer({ min: 0, max: 7 }), ({ old, cur }, at) => {
      const ref = reference(old, cur);
      const out = new Uint8Array(PAGE + 16).fill(0xee);
      const len = xbzrle.encode(placed(old, at), placed(cur, (at * 3) % 8), out.subarray(0, PAGE));
      if (ref.length > PAGE) {
        assert.equal(len, -1);
        return;
      }
      assert.equal(len, ref.length);
      assert.deepEqual([...out.subarray(0, len)], ref);
      assert.ok(out.subarray(PAGE).every((b) => b === 0xee), "wrote past out");
      const page = old.slice();
      xbzrle.decode(out.subarray(0, len), page);
      assert.deepEqual(page, cur);
    }),
    opts,
  );
});

Deno.test("xbzrle: a short out overflows exactly when the delta does not fit it", () => {
  fc.assert(
    fc.property(pagePair, fc.nat(PAGE), ({ old, cur }, room) => {
      const ref = reference(old, cur);
      const buf = new Uint8Array(room + 8).fill(0x5a);
      const len = xbzrle.encode(old, cur, buf.subarray(0, room));
      assert.equal(len, ref.length > room ? -1 : ref.length);
      assert.ok(buf.subarray(room).every((b) => b === 0x5a), "wrote past out");
    }),
    opts,
  );
});

Deno.test("xbzrle: fixed cases", () => {
  const old = new Uint8Array(PAGE).fill(7);
  const out = new Uint8Array(PAGE);
  assert.equal(xbzrle.encode(old, old.slice(), out), 0);
  const cur = old.slice();
  cur[0] = 1;
  cur[200] = 2;
  cur[201] = 3;
  assert.equal(xbzrle.encode(old, cur, out), 8);
  // zrun 0, nzrun 1, [1]; zrun 199 (0xc7 0x01), nzrun 2, [2, 3]; the equal tail is omitted
  assert.deepEqual([...out.subarray(0, 8)], [0, 1, 1, 0xc7, 0x01, 2, 2, 3]);
  const page = old.slice();
  xbzrle.decode(out.subarray(0, 8), page);
  assert.deepEqual(page, cur);
  const random = crypto.getRandomValues(new Uint8Array(PAGE));
  random.forEach((b, i) => random[i] = b === 7 ? 8 : b);
  assert.equal(xbzrle.encode(old, random, out), -1, "a wholly new page overflows");
  assert.throws(() => xbzrle.encode(old, new Uint8Array(10), out), RangeError);
});

Deno.test("xbzrle: malformed deltas throw CodecError and leave the page alone", () => {
  const cases: [number[], RegExp][] = [
    [[0x80], /truncated inside a ULEB128/],
    [[0x05], /truncated after an unchanged run/],
    [[0x00, 0x05, 1, 2], /truncated: a changed run of 5 bytes has 2/],
    [[0x80, 0x80, 0x80, 0x80, 0x80, 0x01], /ULEB128 longer than 5 bytes/],
    [[0x80, 0x20, 0x01, 0xff], /runs past the end of the page/], // zrun 4096, nzrun 1
    [[0x81, 0x20, 0x01, 0xff], /runs past the end of the page/], // zrun 4097
    [[0xff, 0x1f, 0x02, 1, 2], /runs past the end of the page/], // 4095 + 2
    [[0xff, 0x1f, 0x01, 9, 0x01], /1 trailing bytes after the end of the page/],
    [[0x01, 0x00], /empty changed run/],
    [[0x00, 0x01, 9, 0x00, 0x01, 9], /empty unchanged run at offset 3/],
    [[...new Uint8Array(PAGE + 1)], /longer than the page/],
  ];
  for (const [bytes, message] of cases) {
    const page = new Uint8Array(PAGE).fill(3);
    throwsCodec(() => xbzrle.decode(Uint8Array.from(bytes), page), message);
    assert.ok(page.every((b) => b === 3), `page changed by ${bytes.slice(0, 8)}`);
  }
  const page = new Uint8Array(PAGE);
  xbzrle.decode(Uint8Array.from([0xff, 0x1f, 0x01, 9]), page); // the last byte alone
  assert.equal(page[PAGE - 1], 9);
  xbzrle.decode(Uint8Array.from([0x80, 0x80, 0x80, 0x80, 0x00, 0x01, 4]), page); // 5-byte zero
  assert.equal(page[0], 4);
});

/** Decodes into a page framed by guard bytes; returns whether it threw (CodecError only). */
function guardedDecode(delta: Uint8Array, fill: number): boolean {
  const frame = new Uint8Array(PAGE + 64).fill(0xa5);
  const page = frame.subarray(32, 32 + PAGE);
  page.fill(fill);
  let threw = false;
  try {
    xbzrle.decode(delta, page);
  } catch (e) {
    assert.ok(e instanceof CodecError, `threw ${e}`);
    threw = true;
    assert.ok(page.every((b) => b === fill), "a failed decode changed the page");
  }
  assert.ok(frame.subarray(0, 32).every((b) => b === 0xa5), "wrote before the page");
  assert.ok(frame.subarray(32 + PAGE).every((b) => b === 0xa5), "wrote after the page");
  return threw;
}

Deno.test("xbzrle: random and mutated deltas only ever throw CodecError, in bounds", () => {
  let threw = 0;
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: PAGE + 100 }), (delta) => {
      if (guardedDecode(delta, 0x11)) threw++;
    }),
    opts,
  );
  fc.assert(
    fc.property(
      pagePair,
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { minLength: 1, maxLength: 4 }),
      fc.nat(),
      ({ old, cur }, flips, cut) => {
        const out = new Uint8Array(PAGE);
        const len = xbzrle.encode(old, cur, out);
        if (len <= 0) return;
        const delta = out.slice(0, len);
        for (const [at, v] of flips) delta[at % len] = v;
        guardedDecode(delta, 0x22);
        guardedDecode(delta.subarray(0, cut % len), 0x33);
      },
    ),
    opts,
  );
  assert.ok(threw > 0, "random input never failed: the checks are not running");
});

Deno.test("xbzrle: pages with 64 changed bytes each: small deltas that turn old into cur", () => {
  const n = 256;
  const old = new Uint8Array(n * PAGE);
  crypto.getRandomValues(old.subarray(0, 65536));
  for (let i = 65536; i < old.length; i += 65536) old.copyWithin(i, 0, 65536);
  const cur = old.slice();
  for (let p = 0; p < n; p++) {
    const at = p * PAGE + Math.floor(Math.random() * (PAGE - 64));
    for (let k = 0; k < 64; k++) cur[at + k] ^= 1 + (k % 255);
  }
  const deltas = new Uint8Array(n * PAGE);
  const lens = new Int32Array(n);
  for (let p = 0, o = 0; p < n; p++, o += PAGE) {
    lens[p] = xbzrle.encode(
      old.subarray(o, o + PAGE),
      cur.subarray(o, o + PAGE),
      deltas.subarray(o, o + PAGE),
    );
  }
  for (let p = 0, o = 0; p < n; p++, o += PAGE) {
    xbzrle.decode(deltas.subarray(o, o + lens[p]), old.subarray(o, o + PAGE));
  }
  assert.ok(lens.every((l) => l > 64 && l < 80), "each delta holds its 64 changed bytes");
  assert.deepEqual(old, cur, "decoding every delta turns old into cur");
});
