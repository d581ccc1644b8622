/**
 * The disk section's records (domain/wire/disk.ts): round trips, and the checks that keep a
 * stream inside the images: an unknown drive, an offset or length outside the drive, a
 * payload that does not match its header, a truncated or padded DISK_CONFIG are refused.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeDiskConfig,
  decodeDiskRun,
  type DiskRun,
  encodeDiskConfig,
  encodeDiskData,
  encodeDiskZero,
  type WireDrive,
} from "../../domain/wire/disk.ts";
import { decodeDiskBitmap, encodeDiskBitmap } from "../../domain/wire/disk_bitmap.ts";
import {
  decodeFrameHeader,
  DISK_HEADER_SIZE,
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_DISK_RUN,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const DRIVES: WireDrive[] = [
  { id: "disk0", size: 16 << 20, blockSize: 65536 },
  { id: "scratch.1", size: 3 * 65536, blockSize: 65536 },
];

/** The payload of a whole frame (its header checked against the frame table). */
function payloadOf(frame: Uint8Array): { type: number; payload: Uint8Array } {
  const h = decodeFrameHeader(frame.subarray(0, FRAME_HEADER_SIZE));
  assert.equal(h.length, frame.length - FRAME_HEADER_SIZE);
  return { type: h.type, payload: frame.subarray(FRAME_HEADER_SIZE) };
}

Deno.test("disk records: DISK_CONFIG, DISK_DATA and DISK_ZERO round trip", () => {
  const cfg = payloadOf(encodeDiskConfig(DRIVES));
  assert.equal(cfg.type, FrameType.DISK_CONFIG);
  assert.deepEqual(decodeDiskConfig(cfg.payload), DRIVES);
  const data = crypto.getRandomValues(new Uint8Array(4096));
  const run: DiskRun = { drive: 1, offset: 2 * 65536 + 4096, length: 4096 };
  const d = payloadOf(encodeDiskData(run, data));
  assert.equal(d.type, FrameType.DISK_DATA);
  assert.deepEqual(decodeDiskRun(d.payload, d.type, d.payload.length, DRIVES), run);
  assert.deepEqual(d.payload.subarray(DISK_HEADER_SIZE), data);
  const z = payloadOf(encodeDiskZero({ drive: 0, offset: (16 << 20) - 65536, length: 65536 }));
  assert.equal(z.type, FrameType.DISK_ZERO);
  assert.deepEqual(decodeDiskRun(z.payload, z.type, z.payload.length, DRIVES), {
    drive: 0,
    offset: (16 << 20) - 65536,
    length: 65536,
  });
});

Deno.test("disk records: a run outside its drive, or of an unknown drive, is refused", () => {
  const zero = (r: DiskRun) => payloadOf(encodeDiskZero(r)).payload;
  const refused = (p: Uint8Array, re: RegExp) =>
    assert.throws(() => decodeDiskRun(p, FrameType.DISK_ZERO, p.length, DRIVES), (e) => {
      assert.ok(e instanceof WireError, String(e));
      assert.match(e.message, re);
      return true;
    });
  refused(zero({ drive: 1, offset: 3 * 65536 - 4095, length: 4096 }), /outside drive 'scratch.1'/);
  refused(zero({ drive: 0, offset: 2 ** 40, length: 1 }), /outside drive 'disk0'/);
  refused(zero({ drive: 2, offset: 0, length: 1 }), /names drive 2, the stream has 2/);
  // An offset near 2^64 must not wrap around.
  const huge = zero({ drive: 0, offset: 0, length: 1 });
  new DataView(huge.buffer, huge.byteOffset).setBigUint64(2, (1n << 64n) - 1n);
  refused(huge, /outside drive 'disk0'/);
  const big = zero({ drive: 0, offset: 0, length: 1 });
  new DataView(big.buffer, big.byteOffset).setUint32(10, MAX_DISK_RUN + 1);
  refused(big, /length 1048577 is not in 1\.\.1048576/);
});

Deno.test("disk records: a truncated or padded record is refused", () => {
  const cfg = payloadOf(encodeDiskConfig(DRIVES)).payload;
  for (const cut of [0, 1, 3, cfg.length - 1]) {
    assert.throws(() => decodeDiskConfig(cfg.subarray(0, cut)), WireError, `cut at ${cut}`);
  }
  const padded = new Uint8Array(cfg.length + 1);
  padded.set(cfg);
  assert.throws(() => decodeDiskConfig(padded), /1 extra bytes/);
  const d = payloadOf(encodeDiskData({ drive: 0, offset: 0, length: 100 }, new Uint8Array(100)));
  assert.throws(
    () => decodeDiskRun(d.payload, d.type, d.payload.length - 1, DRIVES),
    /DISK_DATA payload is 113 bytes, its header says 114/,
  );
  assert.throws(
    () => decodeDiskRun(d.payload.subarray(0, 10), d.type, 10, DRIVES),
    /disk run header is truncated/,
  );
});

Deno.test("property: a disk run decodes exactly when it lies inside a drive of the stream", () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 3 }),
      fc.integer({ min: 0, max: 2 ** 25 }),
      fc.integer({ min: 1, max: MAX_DISK_RUN }),
      fc.boolean(),
      (drive, offset, length, zero) => {
        const run = { drive, offset, length };
        const frame = zero ? encodeDiskZero(run) : encodeDiskData(run, new Uint8Array(length));
        const { type, payload } = payloadOf(frame);
        const inside = drive < DRIVES.length && offset + length <= DRIVES[drive].size;
        if (inside) assert.deepEqual(decodeDiskRun(payload, type, payload.length, DRIVES), run);
        else assert.throws(() => decodeDiskRun(payload, type, payload.length, DRIVES), WireError);
      },
    ),
    { seed, numRuns: 300 },
  );
});

Deno.test("DISK_BITMAP: any run round-trips as bits; a bad name, length or stray bit is refused", () => {
  const drives = [{ id: "disk0", size: 1000 * 65536, blockSize: 65536 }];
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 999 }),
      fc.uint8Array({ minLength: 1, maxLength: 1000 }),
      fc.stringMatching(/^[\x21-\x7e]{1,64}$/),
      (first, raw, name) => {
        const marks = raw.subarray(0, 1000 - first).map((b) => b & 1);
        if (marks.length === 0) return;
        const { type, payload } = payloadOf(
          encodeDiskBitmap({ drive: 0, name, first, marks }),
        );
        assert.equal(type, FrameType.DISK_BITMAP);
        assert.deepEqual(decodeDiskBitmap(payload, drives), { drive: 0, name, first, marks });
      },
    ),
    { seed },
  );
  const good = payloadOf(
    encodeDiskBitmap({ drive: 0, name: "b", first: 0, marks: new Uint8Array(3) }),
  ).payload;
  assert.throws(() => decodeDiskBitmap(good.subarray(0, good.length - 1), drives), WireError);
  const padded = new Uint8Array(good.length + 1);
  padded.set(good);
  assert.throws(() => decodeDiskBitmap(padded, drives), /payload is 14 bytes, its header says 13/);
  const stray = good.slice();
  stray[stray.length - 1] = 0x80; // bit 7 of a 3-block run
  assert.throws(() => decodeDiskBitmap(stray, drives), /bits set beyond its count/);
  const spaced = good.slice();
  spaced[3] = 0x20;
  assert.throws(() => decodeDiskBitmap(spaced, drives), /name is not 1..64 printable ASCII/);
});
