/**
 * COLO_RECORDS (0x52), the primary's output records a COLO checkpoint carries: the pure encoder
 * and decoder, without sockets — round trips of any records, and every bound the decoder checks
 * (a frame a peer built by hand), each refused with a WireError that says which.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  COLO_RECORD_HEADER,
  type ColoRecord,
  decodeColoRecords,
  decodeFrameHeader,
  encodeColoInput,
  encodeColoRecords,
  FRAME_HEADER_SIZE,
  FRAMES,
  FrameType,
  MAX_COLO_RECORD_BYTES,
  MAX_COLO_RECORDS,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

function throwsWire(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${e}`);
    assert.match(e.message, message);
    return true;
  });
}

/** The payload of an encoded frame, its header checked against the frame table. */
function payload(frame: Uint8Array): Uint8Array {
  const h = decodeFrameHeader(frame);
  assert.equal(h.type, FrameType.COLO_RECORDS);
  assert.equal(frame.length, FRAME_HEADER_SIZE + h.length);
  return frame.subarray(FRAME_HEADER_SIZE);
}

const text = (s: string) => new TextEncoder().encode(s);

Deno.test("colo records: any ascending records below next round-trip", () => {
  fc.assert(
    fc.property(
      fc.uniqueArray(fc.integer({ min: 1, max: 2 ** 40 }), { maxLength: 40 }),
      fc.array(fc.uint8Array({ maxLength: 300 }), { minLength: 40, maxLength: 40 }),
      fc.integer({ min: 1, max: 1000 }),
      (seqs, bodies, ahead) => {
        seqs.sort((a, b) => a - b);
        const records: ColoRecord[] = seqs.map((seq, i) => ({
          seq,
          stream: i % 3 === 0 ? "stderr" : "stdout",
          bytes: bodies[i],
        }));
        const next = (seqs.at(-1) ?? 0) + ahead;
        assert.deepEqual(decodeColoRecords(payload(encodeColoRecords(next, records))), {
          next,
          records,
        });
      },
    ),
    { seed, numRuns: 100 },
  );
});

Deno.test("colo records: the encoder refuses what the decoder would", () => {
  const r = (seq: number, n = 1): ColoRecord => ({
    seq,
    stream: "stdout",
    bytes: new Uint8Array(n),
  });
  assert.throws(() => encodeColoRecords(0, []), RangeError);
  assert.throws(() => encodeColoRecords(5, [r(2), r(2)]), /out of order/);
  assert.throws(() => encodeColoRecords(5, [r(3), r(2)]), /out of order/);
  assert.throws(() => encodeColoRecords(5, [r(5)]), /below 5/);
  const many = Array.from({ length: MAX_COLO_RECORDS + 1 }, (_, i) => r(i + 1, 0));
  assert.throws(() => encodeColoRecords(MAX_COLO_RECORDS + 2, many), /8193 output records/);
  const big = [r(1, MAX_COLO_RECORD_BYTES / 2), r(2, MAX_COLO_RECORD_BYTES / 2 + 1)];
  assert.throws(() => encodeColoRecords(3, big), /bytes of output records, at most/);
  // The largest frame the encoder makes fits the frame table's maximum.
  const full = Array.from({ length: MAX_COLO_RECORDS }, (_, i) => r(i + 1, 0));
  full[0] = r(1, MAX_COLO_RECORD_BYTES);
  const frame = encodeColoRecords(MAX_COLO_RECORDS + 1, full);
  assert.equal(frame.length - FRAME_HEADER_SIZE, FRAMES[FrameType.COLO_RECORDS].max);
  assert.equal(decodeColoRecords(payload(frame)).records.length, MAX_COLO_RECORDS);
});

Deno.test("colo records: a hand-made payload out of bounds is refused, saying which bound", () => {
  const good = payload(encodeColoRecords(10, [
    { seq: 4, stream: "stdout", bytes: text("increment pass 4\n") },
    { seq: 7, stream: "stderr", bytes: text("x") },
  ]));
  const v = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.length);
  const edit = (f: (b: Uint8Array) => void) => {
    const b = good.slice();
    f(b);
    return b;
  };
  const second = 12 + COLO_RECORD_HEADER + 17; // where record 2 starts
  throwsWire(() => decodeColoRecords(good.subarray(0, 11)), /11 bytes, at least 12/);
  throwsWire(() => decodeColoRecords(edit((b) => v(b).setBigUint64(0, 0n))), /next seq 0 out/);
  throwsWire(
    () => decodeColoRecords(edit((b) => v(b).setUint32(8, MAX_COLO_RECORDS + 1))),
    /8193 records, at most 8192/,
  );
  throwsWire(() => decodeColoRecords(edit((b) => v(b).setUint32(8, 3))), /record 3 of 3 cut short/);
  throwsWire(() => decodeColoRecords(edit((b) => v(b).setUint32(8, 1))), /bytes after the last/);
  throwsWire(() => decodeColoRecords(edit((b) => v(b).setBigUint64(12, 0n))), /seq 0 out/);
  throwsWire(
    () => decodeColoRecords(edit((b) => v(b).setBigUint64(second, 4n))),
    /seq 4 out of order \(after 4/,
  );
  throwsWire(
    () => decodeColoRecords(edit((b) => v(b).setBigUint64(second, 10n))),
    /seq 10 out of order \(after 4, below next 10\)/,
  );
  throwsWire(() => decodeColoRecords(edit((b) => (b[second + 8] = 2))), /stream 2 of seq 7/);
  throwsWire(
    () => decodeColoRecords(edit((b) => v(b).setUint32(second + 9, 2))),
    /seq 7 has 2 bytes, past the frame's end/,
  );
  throwsWire(
    () => decodeColoRecords(edit((b) => v(b).setUint32(12 + 9, 0xffffffff))),
    /seq 4 has 4294967295 bytes/,
  );
  // Two records whose lengths sum past the byte cap (each fits the frame it claims).
  const huge = new Uint8Array(12 + 2 * COLO_RECORD_HEADER + MAX_COLO_RECORD_BYTES + 1);
  const hv = v(huge);
  hv.setBigUint64(0, 3n);
  hv.setUint32(8, 2);
  hv.setBigUint64(12, 1n);
  hv.setUint32(12 + 9, MAX_COLO_RECORD_BYTES);
  const at = 12 + COLO_RECORD_HEADER + MAX_COLO_RECORD_BYTES;
  hv.setBigUint64(at, 2n);
  hv.setUint32(at + 9, 1);
  throwsWire(() => decodeColoRecords(huge), /more than 8388608 bytes of records/);
  // A frame header beyond the table's maximum is refused before any payload is read.
  const head = new Uint8Array(FRAME_HEADER_SIZE);
  head[0] = FrameType.COLO_RECORDS;
  new DataView(head.buffer).setUint32(1, FRAMES[FrameType.COLO_RECORDS].max! + 1);
  throwsWire(() => decodeFrameHeader(head), /COLO_RECORDS payload length \d+ exceeds/);
});

Deno.test("COLO_INPUT: input bytes go in frames of at most 64 KiB, in order, none for none", () => {
  const spec = FRAMES[FrameType.COLO_INPUT];
  assert.deepEqual([spec.name, spec.min, spec.max], ["COLO_INPUT", 1, 65536]);
  assert.deepEqual(encodeColoInput(new Uint8Array(0)), []);
  fc.assert(
    fc.property(fc.integer({ min: 1, max: 200_000 }), fc.integer({ min: 0, max: 255 }), (n, b) => {
      const bytes = Uint8Array.from({ length: n }, (_, i) => (i * 7 + b) & 0xff);
      const frames = encodeColoInput(bytes);
      assert.equal(frames.length, Math.ceil(n / 65536));
      const back = new Uint8Array(n);
      let at = 0;
      for (const f of frames) {
        const h = decodeFrameHeader(f);
        assert.equal(h.type, FrameType.COLO_INPUT);
        assert.ok(h.length >= spec.min! && h.length <= spec.max!, `${h.length} bytes`);
        assert.equal(f.length, FRAME_HEADER_SIZE + h.length);
        back.set(f.subarray(FRAME_HEADER_SIZE), at);
        at += h.length;
      }
      assert.equal(at, n);
      assert.deepEqual(back, bytes);
    }),
    { seed, numRuns: 15 },
  );
});
