/**
 * The source's compression threads (`compress`, `compress-threads`, `compress-level`,
 * `compress-wait-thread`): Workers that deflate batches of pages with the zlib codec.
 *
 * A batch is `n` pages back to back; the pool copies them before the call returns (into a
 * recycled buffer that is transferred to a Worker and back, never a fresh buffer per page)
 * and answers with one zlib stream per `pagesPerBlob` pages (1 by default: every page on its
 * own, as QEMU does). Answers arrive in submission order. `compress` waits for a free thread
 * (`compress-wait-thread` on); `tryCompress` returns null when every thread is busy, and the
 * caller sends those pages uncompressed (`compress-wait-thread` off; counted as `busy`).
 *
 * @module
 */
import type { CodecReply } from "./compress_messages.ts";
import { type JobBody, WorkerPool } from "./worker_pool.ts";
import { checkLevel } from "./zlib_limits.ts";

/** Sizes of a pool's batches. */
export interface CompressPoolOptions {
  /** Bytes per page (4096). */
  pageSize?: number;
  /** The most pages one call may pass (64). */
  maxBatch?: number;
  /** Pages per zlib stream (1): more compress faster and better, QEMU uses 1. */
  pagesPerBlob?: number;
}

/** Cumulative compression statistics, as QMP `query-migrate` reports them. */
export interface CompressStats {
  /** Pages compressed (answers received). */
  pages: number;
  /** Pages sent uncompressed because every thread was busy. */
  busy: number;
  /** Pages offered to the pool: accepted plus `busy`. */
  attempted: number;
  /** Bytes of compressed output. */
  compressedSize: number;
  /** `pages * pageSize / compressedSize` (0 before any output). */
  compressionRate: number;
  /** `busy / attempted` (0 before any attempt). */
  busyRate: number;
}

/** Reads and checks the batch sizes. */
export function batchSizes(o: CompressPoolOptions): Required<CompressPoolOptions> {
  const pageSize = o.pageSize ?? 4096;
  const maxBatch = o.maxBatch ?? 64;
  const pagesPerBlob = o.pagesPerBlob ?? 1;
  for (const [k, v] of Object.entries({ pageSize, maxBatch, pagesPerBlob })) {
    if (!Number.isSafeInteger(v) || v < 1) throw new RangeError(`codec pool: bad ${k} ${v}`);
  }
  return { pageSize, maxBatch, pagesPerBlob };
}

/** Deflates batches of pages on a pool of Workers. */
export class CompressPool {
  readonly #pool: WorkerPool;
  readonly #sizes: Required<CompressPoolOptions>;
  readonly #free: ArrayBuffer[] = [];
  #level: number;
  #pages = 0;
  #busy = 0;
  #accepted = 0;
  #compressedSize = 0;

  /** Starts `threads` Workers compressing at `level` (0–9). */
  constructor(threads: number, level: number, options: CompressPoolOptions = {}) {
    checkLevel(level);
    this.#sizes = batchSizes(options);
    this.#level = level;
    this.#pool = new WorkerPool(threads);
  }

  /** The zlib level (0–9) for batches submitted from now on. */
  get level(): number {
    return this.#level;
  }

  set level(level: number) {
    checkLevel(level);
    this.#level = level;
  }

  /** The number of Workers. */
  get threads(): number {
    return this.#pool.threads;
  }

  /** Workers idle right now. */
  get idle(): number {
    return this.#pool.idle;
  }

  /**
   * Compresses the first `n` pages of `pages`, waiting for a free thread; resolves with
   * `ceil(n / pagesPerBlob)` zlib streams, in page order (views into one buffer per batch).
   * `pages` may be reused at once. Waiting batches queue without bound (each holds a copy of its pages): keep a few in
   * flight, e.g. two per thread, and await the oldest before submitting more.
   */
  compress(pages: Uint8Array, n: number): Promise<Uint8Array[]> {
    const { body, transfer } = this.#prepare(pages, n);
    return this.#finish(this.#pool.run(body, transfer), n);
  }

  /**
   * Like `compress` when a thread is idle; otherwise returns null at once, counts the `n`
   * pages as `busy`, and the caller sends them uncompressed.
   */
  tryCompress(pages: Uint8Array, n: number): Promise<Uint8Array[]> | null {
    if (this.#pool.idle === 0) {
      this.#checkBatch(pages, n);
      this.#busy += n;
      return null;
    }
    const { body, transfer } = this.#prepare(pages, n);
    return this.#finish(this.#pool.tryRun(body, transfer)!, n);
  }

  /** The statistics so far. */
  stats(): CompressStats {
    const attempted = this.#accepted + this.#busy;
    return {
      pages: this.#pages,
      busy: this.#busy,
      attempted,
      compressedSize: this.#compressedSize,
      compressionRate: this.#compressedSize === 0
        ? 0
        : this.#pages * this.#sizes.pageSize / this.#compressedSize,
      busyRate: attempted === 0 ? 0 : this.#busy / attempted,
    };
  }

  /** Terminates the Workers; batches not yet answered reject. */
  close(): void {
    this.#pool.close();
  }

  #checkBatch(pages: Uint8Array, n: number): void {
    if (this.#pool.closed) throw new Error("codec pool closed");
    const { pageSize, maxBatch } = this.#sizes;
    if (!Number.isInteger(n) || n < 1 || n > maxBatch || pages.length < n * pageSize) {
      throw new RangeError(
        `compress pool: batch of ${n} pages (${pages.length} bytes; at most ${maxBatch} pages)`,
      );
    }
  }

  #prepare(pages: Uint8Array, n: number): { body: JobBody; transfer: Transferable[] } {
    this.#checkBatch(pages, n);
    const { pageSize, maxBatch, pagesPerBlob } = this.#sizes;
    // Recycled batch buffers (one batch, 256 KiB by default) never reach a socket and hold no
    // aligned 2 MiB page: not advised huge pages.
    const input = this.#free.pop() ?? new ArrayBuffer(maxBatch * pageSize);
    new Uint8Array(input).set(pages.subarray(0, n * pageSize));
    this.#accepted += n;
    const body = {
      t: "deflate" as const,
      input,
      n,
      pageSize,
      unit: pagesPerBlob,
      level: this.#level,
    };
    return { body, transfer: [input] };
  }

  #finish(reply: Promise<CodecReply>, n: number): Promise<Uint8Array[]> {
    const p = reply.then((r) => this.#split(r, n));
    p.catch(() => {}); // see WorkerPool: a dropped promise must not crash the process on close
    return p;
  }

  #split(r: CodecReply, n: number): Uint8Array[] {
    if (this.#free.length < 2 * this.#pool.threads) this.#free.push(r.input);
    const data = new Uint8Array(r.data!);
    const out: Uint8Array[] = [];
    let off = 0;
    for (const len of r.lengths!) {
      out.push(data.subarray(off, off + len));
      off += len;
    }
    this.#pages += n;
    this.#compressedSize += data.length;
    return out;
  }
}
