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
import { checkLevel, zlibBound } from "./zlib_limits.ts";

export { checkLevel, zlibBound };

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
