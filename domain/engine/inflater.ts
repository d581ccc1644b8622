/**
 * The destination's compressed pages: batched to the decompression pool (decompress-threads
 * Workers) and placed in order at the next barrier (a section end, a multifd sync, the
 * device state, EOF) at the latest, so no stale page can land over a newer one.
 *
 * @module
 */
import { DecompressPool } from "../codecs/decompress_pool.ts";

const BATCH = 64;

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

  /** Inflates with `threads` Workers (started on the first page). */
  constructor(threads: number) {
    this.#threads = threads;
  }

  /** Queues one compressed page (the stream is copied). */
  add(block: number, page: number, stream: Uint8Array): void {
    this.#batch.streams.push(stream.slice());
    this.#batch.pages.push({ block, page });
    if (this.#batch.streams.length >= BATCH) this.#submit();
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
  async drain(place: PagePlacer): Promise<number> {
    this.#submit();
    let n = 0;
    while (this.#inflating.length > 0) {
      const { pages, done } = this.#inflating.shift()!;
      const out = await done;
      pages.forEach(({ block, page }, i) =>
        place(block, page, out.subarray(i * 4096, (i + 1) * 4096))
      );
      n += pages.length;
    }
    return n;
  }

  /** Stops the pool's Workers. */
  close(): void {
    this.#pool?.close();
  }
}
