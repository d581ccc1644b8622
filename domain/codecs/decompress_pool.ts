/**
 * The destination's decompression threads (`decompress-threads`): Workers that inflate
 * batches of zlib streams made by `CompressPool` back into pages.
 *
 * The pool packs a batch's streams into one recycled buffer, transfers it to a Worker, and
 * gets the batch's pages back in one transferred buffer. Answers arrive in submission order;
 * a batch with a bad stream rejects with `CodecError` (and nothing of it is returned).
 *
 * @module
 */
import { CodecError } from "./codec_error.ts";
import type { CodecReply } from "./compress_messages.ts";
import { batchSizes, type CompressPoolOptions } from "./compress_pool.ts";
import { WorkerPool } from "./worker_pool.ts";
import { zlibBound } from "./zlib_limits.ts";

/** Inflates batches of compressed pages on a pool of Workers. */
export class DecompressPool {
  readonly #pool: WorkerPool;
  readonly #sizes: Required<CompressPoolOptions>;
  readonly #free: ArrayBuffer[] = [];
  readonly #capacity: number;
  #pages = 0;

  /** Starts `threads` Workers; `options` must match the source's `CompressPool`. */
  constructor(threads: number, options: CompressPoolOptions = {}) {
    this.#sizes = batchSizes(options);
    const { pageSize, maxBatch, pagesPerBlob } = this.#sizes;
    this.#capacity = Math.ceil(maxBatch / pagesPerBlob) * zlibBound(pagesPerBlob * pageSize);
    this.#pool = new WorkerPool(threads);
  }

  /** The number of Workers. */
  get threads(): number {
    return this.#pool.threads;
  }

  /** Pages decompressed so far. */
  get pages(): number {
    return this.#pages;
  }

  /**
   * Inflates `streams` (`ceil(n / pagesPerBlob)` zlib streams, in page order) into `n` pages;
   * resolves with the `n * pageSize` bytes. The streams may be reused at once. Rejects with
   * `CodecError` when a stream is corrupt, too long, or does not inflate to its pages.
   */
  decompress(streams: readonly Uint8Array[], n: number): Promise<Uint8Array> {
    if (this.#pool.closed) throw new Error("codec pool closed");
    const { pageSize, maxBatch, pagesPerBlob } = this.#sizes;
    const blobs = Math.ceil(n / pagesPerBlob);
    if (!Number.isInteger(n) || n < 1 || n > maxBatch || streams.length !== blobs) {
      throw new RangeError(
        `decompress pool: ${streams.length} streams for ${n} pages (at most ${maxBatch} pages, ` +
          `${pagesPerBlob} per stream)`,
      );
    }
    let total = 0;
    for (const s of streams) total += s.length;
    const recycled = total <= this.#capacity ? this.#free.pop() : undefined;
    const input = recycled ?? new ArrayBuffer(Math.max(total, this.#capacity));
    const bytes = new Uint8Array(input);
    const lengths = new Uint32Array(blobs);
    let off = 0;
    streams.forEach((s, k) => {
      bytes.set(s, off);
      off += s.length;
      lengths[k] = s.length;
    });
    const body = { t: "inflate" as const, input, lengths, n, pageSize, unit: pagesPerBlob };
    const p = this.#pool.run(body, [input, lengths.buffer]).then((r) => this.#pagesOf(r, n));
    p.catch(() => {}); // see WorkerPool: a dropped promise must not crash the process on close
    return p;
  }

  /** Terminates the Workers; batches not yet answered reject. */
  close(): void {
    this.#pool.close();
  }

  #pagesOf(r: CodecReply, n: number): Uint8Array {
    const keep = this.#free.length < 2 * this.#pool.threads;
    if (keep && r.input.byteLength === this.#capacity) this.#free.push(r.input);
    if (r.error !== undefined) throw new CodecError(r.error);
    this.#pages += n;
    return new Uint8Array(r.data!);
  }
}
