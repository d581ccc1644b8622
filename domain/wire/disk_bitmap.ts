/**
 * DISK_BITMAP (`0x63`, docs/wire-format.md, "Disk records"): a run of one named dirty bitmap
 * of a drive the DISK_CONFIG named, as bits: `u16 drive`, `u8 len` (1 .. 64), the name
 * (printable ASCII without spaces), `u32 first` (a block), `u32 count` (blocks, 1 ..
 * MAX_BITMAP_RUN), then `ceil(count / 8)` bytes, block `first + i` in bit `i % 8` (least
 * significant first) of byte `i / 8`, the unused high bits zero. The decoder checks the drive,
 * the name, that the run lies inside the drive's blocks and the payload's exact length.
 *
 * @module
 */
import { putFrameHeader } from "./encode.ts";
import { FRAME_HEADER_SIZE, FrameType } from "./frames.ts";
import { WireError } from "./wire_error.ts";

/** Most blocks one DISK_BITMAP covers (its bits fit in 32 KiB). */
export const MAX_BITMAP_RUN = 1 << 18;
const NAME = /^[\x21-\x7e]{1,64}$/;

/** A decoded DISK_BITMAP: `marks` has one byte (0 or 1) per block of the run. */
export interface BitmapRun {
  drive: number;
  name: string;
  first: number;
  marks: Uint8Array;
}

/** Encodes a whole DISK_BITMAP frame from one byte per block (`marks`, nonzero = marked). */
export function encodeDiskBitmap(run: BitmapRun): Uint8Array<ArrayBuffer> {
  const { drive, name, first, marks } = run;
  if (!NAME.test(name)) throw new RangeError(`bad bitmap name '${name}'`);
  if (marks.length < 1 || marks.length > MAX_BITMAP_RUN) throw new RangeError("bad run");
  const length = 2 + 1 + name.length + 8 + Math.ceil(marks.length / 8);
  const b = new Uint8Array(FRAME_HEADER_SIZE + length);
  const v = new DataView(b.buffer);
  let o = putFrameHeader(v, 0, FrameType.DISK_BITMAP, length);
  v.setUint16(o, drive);
  b[o + 2] = name.length;
  o += 3;
  for (let i = 0; i < name.length; i++) b[o++] = name.charCodeAt(i);
  v.setUint32(o, first);
  v.setUint32(o + 4, marks.length);
  o += 8;
  for (let i = 0; i < marks.length; i++) if (marks[i]) b[o + (i >> 3)] |= 1 << (i & 7);
  return b;
}

/** Decodes a DISK_BITMAP payload, checked against `drives` (their sizes in blocks). */
export function decodeDiskBitmap(
  p: Uint8Array,
  drives: readonly { id: string; size: number; blockSize: number }[],
): BitmapRun {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  if (p.length < 4) throw new WireError("DISK_BITMAP payload is truncated");
  const drive = v.getUint16(0);
  if (drive >= drives.length) {
    throw new WireError(`DISK_BITMAP names drive ${drive}, the stream has ${drives.length}`);
  }
  const len = p[2];
  if (p.length < 3 + len + 8) throw new WireError("DISK_BITMAP payload is truncated");
  const name = String.fromCharCode(...p.subarray(3, 3 + len));
  if (!NAME.test(name)) throw new WireError("DISK_BITMAP name is not 1..64 printable ASCII");
  const first = v.getUint32(3 + len);
  const count = v.getUint32(7 + len);
  if (count < 1 || count > MAX_BITMAP_RUN) {
    throw new WireError(`DISK_BITMAP count ${count} is not in 1..${MAX_BITMAP_RUN}`);
  }
  const d = drives[drive];
  const blocks = Math.ceil(d.size / d.blockSize);
  if (first + count > blocks) {
    throw new WireError(
      `DISK_BITMAP blocks ${first} + ${count} lie outside drive '${d.id}' of ${blocks} blocks`,
    );
  }
  const want = 3 + len + 8 + Math.ceil(count / 8);
  if (p.length !== want) {
    throw new WireError(`DISK_BITMAP payload is ${p.length} bytes, its header says ${want}`);
  }
  const bits = p.subarray(11 + len);
  const marks = new Uint8Array(count);
  for (let i = 0; i < count; i++) marks[i] = (bits[i >> 3] >> (i & 7)) & 1;
  if (count % 8 !== 0 && bits[bits.length - 1] >> (count % 8) !== 0) {
    throw new WireError("DISK_BITMAP has bits set beyond its count");
  }
  return { drive, name, first, marks };
}
