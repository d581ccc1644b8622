/**
 * The destination's compressed pages: batched to the decompression pool (decompress-threads
 * Workers) and placed in order at the next barrier (a section end, a multifd sync, the
 * device state, EOF) at the latest, so no stale page can land over a newer one — or sooner,
 * oldest first, once MAX_JOBS batches are on their way: what a peer's pages hold in memory is
 * bounded (MAX_JOBS × BATCH pages, compressed and inflated), however long its section.
 *
 * @module
 */
import { DecompressPool } from "../codecs/decompress_pool.ts";

const BATCH = 64;
/** Batches inflating (or inflated and waiting to be placed) at most. */
export const MAX_JOBS = 8;

/** Where inflated pages go: `place(block, page, data)` writes one page. */
export type PagePlacer = (block: number, page: number, data: Uint8Array) => void;

/** Compressed pages on their way into RAM. */
export class Inflater {
  readonly #threads: number;
  #pool: DecompressPool | null = null;
  #batch: { streams: Uint8Array[]; pages: { block: number; page: number }[] } = {
    streams: [],
    pages: [],
  };
  readonly #inflating: { pages: { block: number; page: number }[]; done: Promise<Uint8Array> }[] =
    [];

  readonly #place: PagePlacer;

  /** Inflates with `threads` Workers (started on the first page) and places with `place`. */
  constructor(threads: number, place: PagePlacer) {
    this.#threads = threads;
    this.#place = place;
  }

  /**
   * Queues one compressed page (the stream is copied); with MAX_JOBS batches on their way,
   * first places the oldest. Resolves to the pages placed meanwhile; rejects on bad data.
   */
  async add(block: number, page: number, stream: Uint8Array): Promise<number> {
    this.#batch.streams.push(stream.slice());
    this.#batch.pages.push({ block, page });
    if (this.#batch.streams.length < BATCH) return 0;
    this.#submit();
    return this.#inflating.length > MAX_JOBS ? await this.#placeOldest() : 0;
  }

  /** Places the oldest batch (in order); returns its page count. */
  async #placeOldest(): Promise<number> {
    const { pages, done } = this.#inflating.shift()!;
    const out = await done;
    pages.forEach(({ block, page }, i) =>
      this.#place(block, page, out.subarray(i * 4096, (i + 1) * 4096))
    );
    return pages.length;
  }

  /** Batches on their way now. */
  get jobs(): number {
    return this.#inflating.length;
  }

  #submit(): void {
    const { streams, pages } = this.#batch;
    if (streams.length === 0) return;
    this.#batch = { streams: [], pages: [] };
    this.#pool ??= new DecompressPool(this.#threads);
    const done = this.#pool.decompress(streams, streams.length);
    done.catch(() => {}); // observed in drain()
    this.#inflating.push({ pages, done });
  }

  /** Places every page queued so far, in order; returns how many. Rejects on bad data. */
  async drain(): Promise<number> {
    this.#submit();
    let n = 0;
    while (this.#inflating.length > 0) n += await this.#placeOldest();
    return n;
  }

  /** Stops the pool's Workers. */
  close(): void {
    this.#pool?.close();
  }
}
