/**
 * Encoders for the migration stream. The hot-path `put*` writers write into a caller's
 * buffer and return the new offset (no allocation); `encode*` allocate a whole frame.
 * Encoders throw `RangeError` for values the format cannot carry (a caller's bug or an
 * unsupported configuration), never a `WireError`.
 *
 * @module
 */

import {
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_BLOCK_SIZE,
  MAX_BLOCKS,
  MAX_PAGE_SIZE,
  MAX_RUN_PAGES,
  MAX_SMALL_PAYLOAD,
  MIN_PAGE_SIZE,
  RUN_HEADER_SIZE,
} from "./frames.ts";

const utf8 = new TextEncoder();

function checkUint(what: string, value: number, max: number): void {
  if (!Number.isInteger(value) || value < 0 || value > max) {
    throw new RangeError(`${what} ${value} is not an integer in 0..${max}`);
  }
}

/** Throws `RangeError` unless `pageSize` is a power of two in 1 KiB..64 KiB. */
export function checkPageSize(pageSize: number): void {
  if (
    !Number.isInteger(pageSize) || pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE ||
    (pageSize & (pageSize - 1)) !== 0
  ) {
    throw new RangeError(`page size ${pageSize} is not a power of two in 1024..65536`);
  }
}

/** Writes a 5-byte frame header at `off`; returns `off + 5`. */
export function putFrameHeader(view: DataView, off: number, type: number, length: number): number {
  if (length >>> 0 !== length) throw new RangeError(`frame length ${length} is not a u32`);
  view.setUint8(off, type);
  view.setUint32(off + 1, length);
  return off + FRAME_HEADER_SIZE;
}

function putRun(view: DataView, off: number, block: number, firstPage: number, count: number) {
  checkUint("block index", block, 0xffff);
  checkUint("first page", firstPage, 0xffffffff);
  view.setUint16(off, block);
  view.setUint32(off + 2, firstPage);
  view.setUint32(off + 6, count);
  return off + RUN_HEADER_SIZE;
}

/**
 * Writes a PAGE_RUN frame header and its run header (15 bytes) at `off`; the caller then
 * writes `count * pageSize` bytes of page data at the returned offset.
 */
export function putPageRunHeader(
  view: DataView,
  off: number,
  block: number,
  firstPage: number,
  count: number,
  pageSize: number,
): number {
  if (!Number.isInteger(count) || count < 1 || count > MAX_RUN_PAGES) {
    throw new RangeError(`PAGE_RUN count ${count} is not in 1..${MAX_RUN_PAGES}`);
  }
  checkPageSize(pageSize);
  off = putFrameHeader(view, off, FrameType.PAGE_RUN, RUN_HEADER_SIZE + count * pageSize);
  return putRun(view, off, block, firstPage, count);
}

/** Writes a whole ZERO_RUN frame (15 bytes) at `off`; returns the new offset. */
export function putZeroRun(
  view: DataView,
  off: number,
  block: number,
  firstPage: number,
  count: number,
): number {
  if (!Number.isInteger(count) || count < 1 || count > 0xffffffff) {
    throw new RangeError(`ZERO_RUN count ${count} is not in 1..4294967295`);
  }
  off = putFrameHeader(view, off, FrameType.ZERO_RUN, RUN_HEADER_SIZE);
  return putRun(view, off, block, firstPage, count);
}

function frame(type: number, payloadLength: number): [Uint8Array<ArrayBuffer>, DataView] {
  const b = new Uint8Array(FRAME_HEADER_SIZE + payloadLength);
  const v = new DataView(b.buffer);
  putFrameHeader(v, 0, type, payloadLength);
  return [b, v];
}

/** Encodes a whole CONFIG frame: page size and the RAM blocks in order. */
export function encodeConfig(
  pageSize: number,
  layout: readonly { name: string; size: number }[],
): Uint8Array<ArrayBuffer> {
  checkPageSize(pageSize);
  if (layout.length < 1 || layout.length > MAX_BLOCKS) {
    throw new RangeError(`block count ${layout.length} is not in 1..${MAX_BLOCKS}`);
  }
  const names = layout.map((blk) => {
    const name = utf8.encode(blk.name);
    if (name.length < 1 || name.length > 255) {
      throw new RangeError(`RAM block name '${blk.name}' is not 1..255 bytes of UTF-8`);
    }
    if (!Number.isInteger(blk.size) || blk.size < 0 || blk.size > MAX_BLOCK_SIZE) {
      throw new RangeError(`RAM block '${blk.name}' size ${blk.size} is not in 0..2^48`);
    }
    if (blk.size % pageSize !== 0) {
      throw new RangeError(`RAM block '${blk.name}' size ${blk.size} is not whole pages`);
    }
    return name;
  });
  const length = 6 + names.reduce((sum, n) => sum + 1 + n.length + 8, 0);
  if (length > MAX_SMALL_PAYLOAD) {
    throw new RangeError(`CONFIG payload of ${length} bytes exceeds ${MAX_SMALL_PAYLOAD}`);
  }
  const [b, v] = frame(FrameType.CONFIG, length);
  let off = FRAME_HEADER_SIZE;
  v.setUint32(off, pageSize);
  v.setUint16(off + 4, layout.length);
  off += 6;
  layout.forEach((blk, i) => {
    b[off] = names[i].length;
    b.set(names[i], off + 1);
    off += 1 + names[i].length;
    v.setUint32(off, Math.floor(blk.size / 2 ** 32));
    v.setUint32(off + 4, blk.size >>> 0);
    off += 8;
  });
  return b;
}

/** Encodes a whole GLOBAL_STATE frame: the source's runstate name (1..63 printable ASCII). */
export function encodeGlobalState(runstate: string): Uint8Array<ArrayBuffer> {
  if (!/^[\x21-\x7e]{1,63}$/.test(runstate)) {
    throw new RangeError(`runstate '${runstate}' is not 1..63 printable ASCII characters`);
  }
  const [b] = frame(FrameType.GLOBAL_STATE, 1 + runstate.length);
  b[FRAME_HEADER_SIZE] = runstate.length;
  for (let i = 0; i < runstate.length; i++) b[FRAME_HEADER_SIZE + 1 + i] = runstate.charCodeAt(i);
  return b;
}

/** Encodes the EOF frame (5 bytes, empty payload). */
export function encodeEof(): Uint8Array<ArrayBuffer> {
  return frame(FrameType.EOF, 0)[0];
}

/** Encodes the CANCEL frame: the source cancelled the migration, nothing follows. */
export function encodeCancel(): Uint8Array<ArrayBuffer> {
  return frame(FrameType.CANCEL, 0)[0];
}

/** Encodes a whole ZERO_RUN frame (allocating form of {@link putZeroRun}). */
export function encodeZeroRun(
  block: number,
  firstPage: number,
  count: number,
): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE + RUN_HEADER_SIZE);
  putZeroRun(new DataView(b.buffer), 0, block, firstPage, count);
  return b;
}

/**
 * Encodes a whole PAGE_RUN frame; `data.length` must be a whole number (1..MAX_RUN_PAGES) of
 * pages.
 */
export function encodePageRun(
  block: number,
  firstPage: number,
  pageSize: number,
  data: Uint8Array,
): Uint8Array<ArrayBuffer> {
  checkPageSize(pageSize);
  const count = data.length / pageSize;
  const b = new Uint8Array(FRAME_HEADER_SIZE + RUN_HEADER_SIZE + data.length);
  const off = putPageRunHeader(new DataView(b.buffer), 0, block, firstPage, count, pageSize);
  b.set(data, off);
  return b;
}
