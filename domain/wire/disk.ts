/**
 * The disk section's records (docs/wire-format.md, "Disk records"): DISK_CONFIG names the
 * drives the stream carries (id, size, block size), DISK_DATA carries up to 64 KiB of one
 * drive's bytes at an offset, DISK_ZERO says such a run is all zero. Decoders check every
 * drive index, offset and length against the drives the CONFIG named before anything is
 * written: a stream cannot write outside an image.
 *
 * @module
 */
import { DISK_HEADER_SIZE, FRAME_HEADER_SIZE, FrameType, MAX_DISK_RUN } from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

/** A drive as the stream names it. */
export interface WireDrive {
  id: string;
  size: number;
  blockSize: number;
}

/** The header of a DISK_DATA or DISK_ZERO run. */
export interface DiskRun {
  /** Index into the DISK_CONFIG's drives. */
  drive: number;
  offset: number;
  length: number;
}

const ID = /^[\x21-\x7e]{1,255}$/;
/** Largest drive size the stream takes (2^48 bytes). */
const MAX_SIZE = 2 ** 48;

/** Encodes a whole DISK_CONFIG frame: u16 count, then per drive u8 len, id, u64 size, u32 block. */
export function encodeDiskConfig(drives: readonly WireDrive[]): Uint8Array<ArrayBuffer> {
  if (drives.length > 0xffff) throw new RangeError("too many drives");
  const length = 2 + drives.reduce((n, d) => n + 1 + d.id.length + 12, 0);
  const b = new Uint8Array(FRAME_HEADER_SIZE + length);
  const v = new DataView(b.buffer);
  let o = putFrameHeader(v, 0, FrameType.DISK_CONFIG, length);
  v.setUint16(o, drives.length);
  o += 2;
  for (const d of drives) {
    if (!ID.test(d.id)) throw new RangeError(`drive id '${d.id}' is not printable ASCII`);
    b[o++] = d.id.length;
    for (let i = 0; i < d.id.length; i++) b[o++] = d.id.charCodeAt(i);
    v.setBigUint64(o, BigInt(d.size));
    v.setUint32(o + 8, d.blockSize);
    o += 12;
  }
  return b;
}

/** Decodes a DISK_CONFIG payload, refusing a truncated or padded one. */
export function decodeDiskConfig(p: Uint8Array): WireDrive[] {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  if (p.length < 2) throw new WireError("DISK_CONFIG payload is truncated");
  const n = v.getUint16(0);
  const drives: WireDrive[] = [];
  let o = 2;
  for (let k = 0; k < n; k++) {
    if (o + 1 > p.length) throw new WireError("DISK_CONFIG payload is truncated");
    const len = p[o++];
    if (len === 0 || o + len + 12 > p.length) {
      throw new WireError("DISK_CONFIG payload is truncated");
    }
    const id = String.fromCharCode(...p.subarray(o, o + len));
    if (!ID.test(id)) throw new WireError("DISK_CONFIG drive id is not printable ASCII");
    o += len;
    const size = v.getBigUint64(o);
    const blockSize = v.getUint32(o + 8);
    o += 12;
    if (size === 0n || size > BigInt(MAX_SIZE)) {
      throw new WireError(`DISK_CONFIG drive '${id}' size ${size} is out of range`);
    }
    drives.push({ id, size: Number(size), blockSize });
  }
  if (o !== p.length) throw new WireError(`DISK_CONFIG payload has ${p.length - o} extra bytes`);
  return drives;
}

function putRun(v: DataView, o: number, r: DiskRun): void {
  if (r.drive >>> 0 !== r.drive || r.drive > 0xffff) throw new RangeError("bad drive index");
  if (!Number.isSafeInteger(r.offset) || r.offset < 0) throw new RangeError("bad disk offset");
  if (r.length < 1 || r.length > MAX_DISK_RUN) throw new RangeError("bad disk run length");
  v.setUint16(o, r.drive);
  v.setBigUint64(o + 2, BigInt(r.offset));
  v.setUint32(o + 10, r.length);
}

/** Encodes the frame and run header of a DISK_DATA whose `run.length` bytes follow it. */
export function encodeDiskDataHeader(run: DiskRun): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE + DISK_HEADER_SIZE);
  const v = new DataView(b.buffer);
  putRun(v, putFrameHeader(v, 0, FrameType.DISK_DATA, DISK_HEADER_SIZE + run.length), run);
  return b;
}

/** Encodes a whole DISK_DATA frame: the run header, then `data`. */
export function encodeDiskData(run: DiskRun, data: Uint8Array): Uint8Array<ArrayBuffer> {
  if (data.length !== run.length) throw new RangeError("disk data is not the run's length");
  const head = encodeDiskDataHeader(run);
  const b = new Uint8Array(head.length + data.length);
  b.set(head);
  b.set(data, head.length);
  return b;
}

/** Encodes a whole DISK_ZERO frame. */
export function encodeDiskZero(run: DiskRun): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE + DISK_HEADER_SIZE);
  const v = new DataView(b.buffer);
  putRun(v, putFrameHeader(v, 0, FrameType.DISK_ZERO, DISK_HEADER_SIZE), run);
  return b;
}

/**
 * Decodes a run header (the first 14 bytes of a DISK_DATA or DISK_ZERO payload of
 * `payloadLength` bytes) and checks it against `drives`: a known drive, a length of 1 .. 64
 * KiB that matches the payload, and [offset, offset + length) inside the drive.
 */
export function decodeDiskRun(
  head: Uint8Array,
  type: number,
  payloadLength: number,
  drives: readonly { id: string; size: number }[],
): DiskRun {
  if (head.length < DISK_HEADER_SIZE) throw new WireError("disk run header is truncated");
  const v = new DataView(head.buffer, head.byteOffset, DISK_HEADER_SIZE);
  const drive = v.getUint16(0);
  const offset = v.getBigUint64(2);
  const length = v.getUint32(10);
  const name = type === FrameType.DISK_ZERO ? "DISK_ZERO" : "DISK_DATA";
  if (drive >= drives.length) {
    throw new WireError(`${name} names drive ${drive}, the stream has ${drives.length}`);
  }
  if (length < 1 || length > MAX_DISK_RUN) {
    throw new WireError(`${name} length ${length} is not in 1..${MAX_DISK_RUN}`);
  }
  const want = type === FrameType.DISK_ZERO ? DISK_HEADER_SIZE : DISK_HEADER_SIZE + length;
  if (payloadLength !== want) {
    throw new WireError(`${name} payload is ${payloadLength} bytes, its header says ${want}`);
  }
  const d = drives[drive];
  if (offset + BigInt(length) > BigInt(d.size)) {
    throw new WireError(
      `${name} at ${offset} + ${length} lies outside drive '${d.id}' of ${d.size} bytes`,
    );
  }
  return { drive, offset: Number(offset), length };
}
