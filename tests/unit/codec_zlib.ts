import assert from "node:assert/strict";
import fc from "fast-check";
import { deflateRawSync, deflateSync } from "node:zlib";
import { CodecError } from "../../domain/codecs/codec_error.ts";
import { zlib, zlibBound } from "../../domain/codecs/zlib.ts";
import { PAGE, textPage, throwsCodec } from "../codec_helpers.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
Deno.test("zlib: pages round-trip at every level as zlib streams within the bound", () => {
  assert.equal(zlibBound(PAGE), 4673);
  const high = crypto.getRandomValues(new Uint8Array(PAGE)).map((b) => 144 + (b % 112));
  const pages = [
    new Uint8Array(PAGE),
    textPage(1),
    crypto.getRandomValues(new Uint8Array(PAGE)),
    high,
  ];
  for (let level = 0; level <= 9; level++) {
    for (const page of pages) {
      const c = zlib.compress(page, level);
      assert.equal(c[0] & 0x0f, 8, "zlib header: deflate method");
      assert.equal(((c[0] << 8) | c[1]) % 31, 0, "zlib header check bits");
      assert.ok(c.length <= zlibBound(PAGE), `level ${level}: ${c.length} bytes`);
      const out = new Uint8Array(PAGE);
      zlib.decompress(c, out);
      assert.deepEqual(out, page);
    }
  }
  assert.ok(zlib.compress(textPage(2), 1).length < PAGE / 2, "text compresses");
  for (const bad of [-1, 10, 1.5, NaN]) {
    assert.throws(() => zlib.compress(pages[0], bad), RangeError);
  }
});

Deno.test("zlib: bad compressed pages throw CodecError and leave out alone", () => {
  const page = textPage(3);
  const good = zlib.compress(page, 1);
  const flipped = good.slice();
  flipped[flipped.length - 1] ^= 1; // the Adler-32
  const garbled = good.slice();
  garbled[good.length >> 1] ^= 0xff;
  const trailing = new Uint8Array(good.length + 2);
  trailing.set(good);
  const cases: [Uint8Array, number, RegExp][] = [
    [new Uint8Array(0), PAGE, /corrupt compressed page/],
    [good.subarray(0, good.length - 3), PAGE, /corrupt compressed page/],
    [flipped, PAGE, /corrupt compressed page: incorrect data check/],
    [trailing, PAGE, /has 2 bytes after its zlib stream/],
    [deflateRawSync(page), PAGE, /corrupt compressed page/], // raw deflate, no zlib header
    [zlib.compress(page.subarray(0, PAGE - 1), 1), PAGE, /inflates to 4095 bytes, expected 4096/],
    [good, PAGE - 1, /inflates to more than 4095 bytes/],
    [deflateSync(new Uint8Array(1 << 20)), PAGE, /inflates to more than 4096 bytes/], // a bomb
    [new Uint8Array(4674), PAGE, /4674 bytes is longer than the bound 4673/],
  ];
  for (const [data, size, message] of cases) {
    const out = new Uint8Array(size).fill(0x42);
    throwsCodec(() => zlib.decompress(data, out), message);
    assert.ok(out.every((b) => b === 0x42), `out written for ${message}`);
  }
  const out = new Uint8Array(PAGE);
  try {
    zlib.decompress(garbled, out);
    assert.deepEqual(out, page, "a garbled stream that inflates must fail its checksum");
  } catch (e) {
    assert.ok(e instanceof CodecError);
  }
});

Deno.test("zlib: random and mutated input only ever throws CodecError", () => {
  const good = zlib.compress(textPage(4), 6);
  fc.assert(
    fc.property(
      fc.uint8Array({ maxLength: 5000 }),
      fc.array(fc.tuple(fc.nat(), fc.nat(255)), { maxLength: 4 }),
      fc.nat(),
      (random, flips, cut) => {
        const mutated = good.slice(0, 1 + (cut % good.length));
        for (const [at, v] of flips) mutated[at % mutated.length] = v;
        for (const data of [random, mutated]) {
          try {
            zlib.decompress(data, new Uint8Array(PAGE));
          } catch (e) {
            assert.ok(e instanceof CodecError, `threw ${e}`);
          }
        }
      },
    ),
    { seed, numRuns: 300 },
  );
});
