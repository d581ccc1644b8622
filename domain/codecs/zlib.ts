/**
 * The zlib page codec: a page (or a group of pages) deflated into one zlib stream
 * (RFC 1950: 2-byte header, deflate data, Adler-32 of the uncompressed bytes), the format
 * QEMU's compression threads produce. The Adler-32 trailer lets the destination detect
 * corrupt data instead of loading garbage into guest RAM. Uses `node:zlib`; both calls
 * block their thread, so run them in the Workers of `CompressPool` / `DecompressPool`.
 *
 * @module
 */
import { deflateSync, inflateSync } from "node:zlib";
import { CodecError } from "./codec_error.ts";

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

/**
 * Deflates `page` (any length) at `level` into a new zlib stream, returned as a plain
 * `Uint8Array` (not a Node `Buffer`, whose `slice` would share memory).
 */
function compress(page: Uint8Array, level: number): Uint8Array {
  checkLevel(level);
  const b = deflateSync(page, { level });
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
}

/** What `inflateSync` returns with `info: true` (absent from its type). */
interface InflateInfo {
  buffer: Uint8Array;
  engine: { bytesWritten: number };
}

/**
 * Inflates the zlib stream `data` into `out`, which it must fill exactly. Throws
 * `CodecError` when `data` is longer than `zlibBound(out.length)`, is not a valid zlib
 * stream (bad header, corrupt or truncated data, wrong Adler-32), inflates to more or fewer
 * bytes than `out.length`, or has bytes after the end of the stream. Never produces more
 * than `out.length` bytes; `out` is written only on success.
 */
function decompress(data: Uint8Array, out: Uint8Array): void {
  const bound = zlibBound(out.length);
  if (data.length > bound) {
    throw new CodecError(
      `compressed page of ${data.length} bytes is longer than the bound ${bound}`,
    );
  }
  let r: InflateInfo;
  try {
    r = inflateSync(data, { maxOutputLength: out.length, info: true }) as unknown as InflateInfo;
  } catch (e) {
    const code = (e as { code?: unknown }).code;
    if (code === "ERR_BUFFER_TOO_LARGE") {
      throw new CodecError(`compressed page inflates to more than ${out.length} bytes`);
    }
    throw new CodecError(`corrupt compressed page: ${e instanceof Error ? e.message : e}`);
  }
  if (r.buffer.length !== out.length) {
    throw new CodecError(
      `compressed page inflates to ${r.buffer.length} bytes, expected ${out.length}`,
    );
  }
  if (r.engine.bytesWritten !== data.length) {
    throw new CodecError(
      `compressed page has ${data.length - r.engine.bytesWritten} bytes after its zlib stream`,
    );
  }
  out.set(r.buffer);
}

/** The zlib page codec: `compress` on the source, `decompress` on the destination. */
export const zlib = { name: "zlib", compress, decompress } as const;
