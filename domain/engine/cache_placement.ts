/**
 * The `cache` placement, for COLO's checkpoints (QEMU's colo_cache): the secondary's guest
 * keeps running on its own RAM while a checkpoint's pages arrive, so they land in a copy of
 * RAM taken when the placement starts, and reach RAM only when the checkpoint is committed
 * ({@link CachePlacement.commit}) — then only the pages the checkpoints touched are copied.
 * Deltas (XBZRLE) apply against the cache: it holds what the primary's side believes this
 * side has. The copy is a full second RAM, as QEMU's is.
 *
 * @module
 */
import { syncDirtyLog } from "../../adapters/memory/dirty_log.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import type { PageMaps, Placement } from "./ram_placement.ts";

/** Pages land in a copy of RAM; {@link commit} moves the touched ones into RAM. */
export class CachePlacement implements Placement {
  readonly kind = "cache";
  readonly encoded = true;
  readonly #m: PageMaps;
  readonly #cache: Uint8Array[];
  /** Pages touched since the last commit (one byte per page, guest-wide). */
  readonly #dirty: Uint8Array;
  /** The same bytes as 32-bit words (the buffer is rounded up to whole words). */
  readonly #dirty32: Uint32Array;
  #pending = 0;

  /** Copies `maps`' RAM into the cache (what the guest holds now is the starting point). */
  constructor(maps: PageMaps) {
    this.#m = maps;
    this.#cache = maps.ram8.map((r) => r.slice());
    const last = maps.guest.layout.at(-1);
    const pages = last ? last.firstPage + last.pages : 0;
    const words = new ArrayBuffer(Math.ceil(pages / 4) * 4);
    this.#dirty = new Uint8Array(words, 0, pages);
    this.#dirty32 = new Uint32Array(words);
  }

  /** Pages the next {@link commit} will copy into RAM. */
  get pending(): number {
    return this.#pending;
  }

  /** The cache's bytes: the run lands there. */
  runTarget(block: number, page: number, count: number): Uint8Array {
    this.#fit(block);
    this.#touch(block, page, count);
    return this.#cache[block].subarray(page * PAGE_SIZE, (page + count) * PAGE_SIZE);
  }

  /** Nothing more: the run is in the cache. */
  runLanded(): void {}

  /** Zeroes the pages in the cache. */
  zeroPages(block: number, page: number, count: number): void {
    this.#fit(block);
    this.#touch(block, page, count);
    this.#cache[block].fill(0, page * PAGE_SIZE, (page + count) * PAGE_SIZE);
  }

  /** Copies the page into the cache. */
  wholePage(block: number, page: number, data: Uint8Array): void {
    this.#fit(block);
    this.#touch(block, page, 1);
    this.#cache[block].set(data, page * PAGE_SIZE);
  }

  /** The cached page a delta applies to (it changes: touched). */
  deltaTarget(block: number, page: number): Uint8Array {
    this.#fit(block);
    this.#touch(block, page, 1);
    return this.#cache[block].subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  }

  /**
   * The checkpoint is whole: copies every page touched since the last commit into RAM (the
   * guest must be stopped) and returns how many. With `own` (this side's dirty log, one byte
   * per page, fetched and cleared here), the pages this side's guest wrote since the last
   * commit are copied back from the cache too (QEMU merges its dirty log first).
   */
  commit(own?: Uint8Array): number {
    const m = this.#m;
    const dirty = this.#dirty;
    if (own) syncDirtyLog(own.subarray(0, dirty.length), dirty);
    const layout = m.guest.layout;
    const words = this.#dirty32;
    let n = 0;
    let b = 0;
    // A checkpoint touches a few pages of many: whole words of untouched pages are skipped.
    for (let w = 0; w < words.length; w++) {
      if (words[w] === 0) continue;
      for (let flat = w * 4, end = Math.min(flat + 4, dirty.length); flat < end; flat++) {
        if (dirty[flat] === 0) continue;
        while (b < layout.length && flat >= layout[b].firstPage + layout[b].pages) b++;
        if (b === layout.length) break;
        const ram = m.ram8[b];
        const cache = this.#cache[b];
        const p = flat - layout[b].firstPage;
        // A page past what the cache or RAM holds now (a block that grew) waits.
        if ((p + 1) * PAGE_SIZE > cache.length || (p + 1) * PAGE_SIZE > ram.length) continue;
        dirty[flat] = 0;
        ram.set(cache.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), p * PAGE_SIZE);
        m.written[flat] = 1;
        n++;
      }
    }
    this.#pending = 0;
    return n;
  }

  /**
   * A growable block (a WebAssembly guest's memory) grew since the cache was taken: the cache
   * grows with it, the new part zero as the grown memory is (the loader checked the page
   * against the block's size before placing it).
   */
  #fit(block: number): void {
    const have = this.#cache[block], want = this.#m.ram8[block].length;
    if (have.length >= want) return;
    const grown = new Uint8Array(want);
    grown.set(have);
    this.#cache[block] = grown;
  }

  #touch(block: number, page: number, count: number): void {
    const first = this.#m.guest.layout[block].firstPage + page;
    for (let p = first; p < first + count; p++) {
      if (this.#dirty[p] === 0) {
        this.#dirty[p] = 1;
        this.#pending++;
      }
    }
  }
}
