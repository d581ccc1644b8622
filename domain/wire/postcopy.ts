/**
 * Postcopy and return-path frames of the main stream (source → destination): advise,
 * open-return-path, ping, discard ranges, the device-state package (listen, state, run),
 * and the recovery requests (received-bitmap request, resume). Pure functions.
 *
 * @module
 */
import {
  decodeFrameHeader,
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_DISCARD_RANGES,
  MAX_PACKAGE,
} from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

const utf8 = new TextEncoder();
const utf8d = new TextDecoder("utf-8", { fatal: true });

/** A run of pages in one block: `[first, first + count)`. */
export interface PageRange {
  first: number;
  count: number;
}

/** Encodes a frame with no payload (LISTEN, RUN, OPEN_RETURN_PATH, RESUME). */
export function encodeEmpty(type: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE);
  putFrameHeader(new DataView(b.buffer), 0, type, 0);
  return b;
}

/** Encodes a frame carrying one u32 (ADVISE: page size; PING: sequence). */
export function encodeU32Frame(type: number, value: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE + 4);
  const v = new DataView(b.buffer);
  putFrameHeader(v, 0, type, 4);
  v.setUint32(FRAME_HEADER_SIZE, value >>> 0);
  return b;
}

/** Reads the u32 payload of ADVISE or PING. */
export function decodeU32(payload: Uint8Array): number {
  if (payload.length !== 4) throw new WireError(`expected a 4-byte payload, got ${payload.length}`);
  return new DataView(payload.buffer, payload.byteOffset, 4).getUint32(0);
}

/** Encodes POSTCOPY_DISCARD frames for one block (split every MAX_DISCARD_RANGES ranges). */
export function encodeDiscard(
  block: number,
  ranges: readonly PageRange[],
): Uint8Array<ArrayBuffer>[] {
  const frames: Uint8Array<ArrayBuffer>[] = [];
  for (let i = 0; i < ranges.length; i += MAX_DISCARD_RANGES) {
    const part = ranges.slice(i, i + MAX_DISCARD_RANGES);
    const len = 4 + 8 * part.length;
    const b = new Uint8Array(FRAME_HEADER_SIZE + len);
    const v = new DataView(b.buffer);
    putFrameHeader(v, 0, FrameType.POSTCOPY_DISCARD, len);
    v.setUint16(5, block);
    v.setUint16(7, part.length);
    part.forEach((r, j) => {
      v.setUint32(9 + 8 * j, r.first);
      v.setUint32(13 + 8 * j, r.count);
    });
    frames.push(b);
  }
  return frames;
}

/** Decodes a POSTCOPY_DISCARD payload; the caller checks each range against its layout. */
export function decodeDiscard(payload: Uint8Array): { block: number; ranges: PageRange[] } {
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  if (payload.length < 4) throw new WireError("POSTCOPY_DISCARD payload too short");
  const block = v.getUint16(0);
  const n = v.getUint16(2);
  if (n < 1 || n > MAX_DISCARD_RANGES || payload.length !== 4 + 8 * n) {
    throw new WireError(`POSTCOPY_DISCARD with ${n} ranges has length ${payload.length}`);
  }
  const ranges: PageRange[] = [];
  for (let j = 0; j < n; j++) {
    ranges.push({ first: v.getUint32(4 + 8 * j), count: v.getUint32(8 + 8 * j) });
  }
  return { block, ranges };
}

/** Wraps frames into one PACKAGED frame (the destination reads it whole before acting). */
export function encodePackage(frames: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  const len = frames.reduce((n, f) => n + f.length, 0);
  if (len > MAX_PACKAGE) throw new RangeError(`package of ${len} bytes exceeds ${MAX_PACKAGE}`);
  const b = new Uint8Array(FRAME_HEADER_SIZE + len);
  putFrameHeader(new DataView(b.buffer), 0, FrameType.PACKAGED, len);
  let off = FRAME_HEADER_SIZE;
  for (const f of frames) {
    b.set(f, off);
    off += f.length;
  }
  return b;
}

/** One frame of a package: its type and a view of its payload. */
export interface PackagedFrame {
  type: number;
  payload: Uint8Array;
}

/**
 * The frames of a PACKAGED frame's payload, in order, each bounded by the package (a frame
 * that runs past its end is refused). Which types may appear is the loader's stream state's
 * decision.
 */
export function splitPackage(pkg: Uint8Array): PackagedFrame[] {
  const frames: PackagedFrame[] = [];
  let off = 0;
  while (off < pkg.length) {
    const h = decodeFrameHeader(pkg, off);
    off += FRAME_HEADER_SIZE;
    if (off + h.length > pkg.length) {
      throw new WireError("migration stream: frame past the end of its package");
    }
    frames.push({ type: h.type, payload: pkg.subarray(off, off + h.length) });
    off += h.length;
  }
  return frames;
}

/** Encodes the source's request for a block's received bitmap (recovery). */
export function encodeRecvBitmapRequest(name: string): Uint8Array<ArrayBuffer> {
  const n = utf8.encode(name);
  if (n.length < 1 || n.length > 255) throw new RangeError(`block name of ${n.length} bytes`);
  const b = new Uint8Array(FRAME_HEADER_SIZE + 1 + n.length);
  putFrameHeader(new DataView(b.buffer), 0, FrameType.RECV_BITMAP, 1 + n.length);
  b[FRAME_HEADER_SIZE] = n.length;
  b.set(n, FRAME_HEADER_SIZE + 1);
  return b;
}

/** Decodes a RECV_BITMAP request: the block name. */
export function decodeRecvBitmapRequest(payload: Uint8Array): string {
  if (payload.length < 2 || payload[0] !== payload.length - 1) {
    throw new WireError(`RECV_BITMAP request with a bad name length`);
  }
  try {
    return utf8d.decode(payload.subarray(1));
  } catch {
    throw new WireError("RECV_BITMAP request: block name is not UTF-8");
  }
}

/** Marker after a received-bitmap dump (as QEMU ends its bitmap with a known value). */
export const RECV_BITMAP_END = 0x0123456789abcdefn;

/**
 * Encodes the received-bitmap dump that follows a RECV_BITMAP return-path message:
 * u64 byte length, one bit per page (LSB first), u64 end marker.
 */
export function encodeBitmapDump(present: Uint8Array, pages: number): Uint8Array<ArrayBuffer> {
  const bytes = Math.ceil(pages / 8);
  const b = new Uint8Array(16 + bytes);
  const v = new DataView(b.buffer);
  v.setBigUint64(0, BigInt(bytes));
  for (let p = 0; p < pages; p++) if (present[p]) b[8 + (p >> 3)] |= 1 << (p & 7);
  v.setBigUint64(8 + bytes, RECV_BITMAP_END);
  return b;
}
