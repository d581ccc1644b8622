/**
 * Single encoded pages: XBZRLE_PAGE (a delta against the page the destination already
 * holds) and COMPRESSED_PAGE (a zlib stream of one page). Header: u16 block, u32 page
 * (block-relative), then the encoded bytes. Pure functions.
 *
 * @module
 */
import { FRAME_HEADER_SIZE } from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

/** Bytes before the encoded data: frame header + u16 block + u32 page. */
export const ENCODED_PAGE_OVERHEAD = FRAME_HEADER_SIZE + 6;

/** Writes an encoded-page frame header at `off`; the caller writes `len` bytes after it. */
export function putEncodedPageHeader(
  view: DataView,
  off: number,
  type: number,
  block: number,
  page: number,
  len: number,
): number {
  off = putFrameHeader(view, off, type, 6 + len);
  view.setUint16(off, block);
  view.setUint32(off + 2, page);
  return off + 6;
}

/** Decodes the 6-byte header of an encoded page; the rest of the payload is the data. */
export function decodeEncodedPage(
  payload: Uint8Array,
): { block: number; page: number; data: Uint8Array } {
  if (payload.length < 7) throw new WireError(`encoded page payload of ${payload.length} bytes`);
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  return { block: v.getUint16(0), page: v.getUint32(2), data: payload.subarray(6) };
}
