/**
 * The zlib codec's limits as pure functions, apart from `zlib.ts` so that code which only
 * sizes buffers or checks a level (the pools, in the data-path Workers) does not load
 * `node:zlib` (a Worker that imports it takes ~15 ms longer to start).
 *
 * @module
 */

/**
 * The longest zlib stream `compress` may produce for `len` input bytes, and the longest a
 * decoder accepts: `len + ceil(len / 8) + ceil(len / 4096) + 64` (4673 for a 4096-byte page).
 * zlib's own `compressBound` (4110) does not hold for the zlib in Deno (Chromium's): at
 * level 1 it codes incompressible data with fixed Huffman codes of up to 9 bits a byte, so a
 * page can grow by 1/8 (4616 bytes measured). A sender should send such a page uncompressed.
 */
export function zlibBound(len: number): number {
  return len + Math.ceil(len / 8) + Math.ceil(len / 4096) + 64;
}

/** Throws unless `level` is a zlib level 0 (stored) … 9 (smallest). */
export function checkLevel(level: number): void {
  if (!Number.isInteger(level) || level < 0 || level > 9) {
    throw new RangeError(`zlib: compression level ${level} is not an integer from 0 to 9`);
  }
}
