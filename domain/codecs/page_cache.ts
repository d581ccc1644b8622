/**
 * The XBZRLE page cache on the source: the last content sent of recently sent pages, so a
 * resent page can go as a delta against it.
 *
 * Like QEMU's cache (`page_cache.c`) it is direct-mapped: `size / pageSize` slots (a power of
 * two), page `p` lives in slot `p % slots`, and each slot holds one page number, the
 * generation (bitmap sync count) it was last used in, and one page of data. A page used
 * within the last `CACHED_PAGE_LIFETIME` generations is not pushed out by another page that
 * maps to its slot. All data lives in one `ArrayBuffer` of `size` bytes allocated up front;
 * nothing is allocated per page.
 *
 * QEMU's use, which the engine follows: a page missing from the cache is inserted when it is
 * sent whole; after a page goes as a delta (or overflows) the cached copy is overwritten with
 * the content just sent; a zero page sent while cached overwrites the copy with zeros.
 *
 * @module
 */

/** Generations during which a cached page is not replaced by another page (QEMU's 2). */
export const CACHED_PAGE_LIFETIME = 2;

const EMPTY = -1;

/** Throws unless `size` is a power of two of at least one page. */
function checkSize(size: number, pageSize: number): void {
  if (size > Number.MAX_SAFE_INTEGER) {
    // The seed's xbzrle_cache_resize: a size the host cannot address.
    throw new RangeError(`xbzrle cache size ${size} is exceeding address space`);
  }
  if (!Number.isSafeInteger(size) || size < pageSize || !Number.isInteger(Math.log2(size))) {
    throw new RangeError(
      `xbzrle cache size ${size} is not a power of two no less than the page size (${pageSize})`,
    );
  }
}

/** Throws unless `page` is a page number (a non-negative safe integer). */
function checkPage(page: number): void {
  if (!Number.isSafeInteger(page) || page < 0) {
    throw new RangeError(`xbzrle cache: ${page} is not a page number`);
  }
}

/** A direct-mapped cache of page copies keyed by guest page number. */
export class PageCache {
  /** Bytes per page (and per slot). */
  readonly pageSize: number;
  #size = 0;
  #slots = 0;
  #data = new Uint8Array(0);
  #pages = new Float64Array(0);
  #ages = new Float64Array(0);
  #hits = 0;
  #misses = 0;
  readonly #onAllocate: ((data: ArrayBuffer) => void) | undefined;

  /**
   * Allocates a cache of `size` bytes (a power of two, at least one page) for pages of
   * `pageSize` bytes (a power of two). Throws `RangeError` otherwise.
   */
  constructor(
    size: number,
    pageSize = 4096,
    /** Called with each new data buffer before it is written (e.g. to advise huge pages). */
    onAllocate?: (data: ArrayBuffer) => void,
  ) {
    if (!Number.isSafeInteger(pageSize) || pageSize < 1 || !Number.isInteger(Math.log2(pageSize))) {
      throw new RangeError(`xbzrle cache: page size ${pageSize} is not a power of two`);
    }
    this.pageSize = pageSize;
    this.#onAllocate = onAllocate;
    checkSize(size, pageSize);
    this.#allocate(size);
  }

  /** The capacity in bytes (`xbzrle-cache-size`). */
  get size(): number {
    return this.#size;
  }

  /** The number of slots (`size / pageSize`). */
  get slots(): number {
    return this.#slots;
  }

  /** Lookups that found their page. */
  get hits(): number {
    return this.#hits;
  }

  /** Lookups that did not. */
  get misses(): number {
    return this.#misses;
  }

  /** Pages held right now. */
  get count(): number {
    let n = 0;
    for (let s = 0; s < this.#slots; s++) if (this.#pages[s] !== EMPTY) n++;
    return n;
  }

  /**
   * The cached copy of `page` (a view into the cache, valid until the slot is overwritten
   * or the cache resized), or null; counts a hit or a miss. When `gen` is given a hit also
   * marks the page as used in generation `gen`.
   */
  lookup(page: number, gen?: number): Uint8Array | null {
    checkPage(page);
    const s = page % this.#slots;
    if (this.#pages[s] !== page) {
      this.#misses++;
      return null;
    }
    this.#hits++;
    if (gen !== undefined) this.#ages[s] = gen;
    return this.#data.subarray(s * this.pageSize, (s + 1) * this.pageSize);
  }

  /** Whether `page` is cached; counts nothing and changes nothing. */
  has(page: number): boolean {
    checkPage(page);
    return this.#pages[page % this.#slots] === page;
  }

  /**
   * Copies `data` (one page) into the cache as `page`, used in generation `gen`. Overwrites
   * the slot if it is empty, already holds `page`, or holds a page last used more than
   * `CACHED_PAGE_LIFETIME` generations before `gen`; otherwise keeps that page and returns
   * false.
   */
  insert(page: number, data: Uint8Array, gen: number): boolean {
    checkPage(page);
    if (data.length !== this.pageSize) {
      throw new RangeError(
        `xbzrle cache: insert of ${data.length} bytes, pages are ${this.pageSize}`,
      );
    }
    const s = page % this.#slots;
    const held = this.#pages[s];
    if (held !== EMPTY && held !== page && this.#ages[s] + CACHED_PAGE_LIFETIME > gen) return false;
    this.#data.set(data, s * this.pageSize);
    this.#pages[s] = page;
    this.#ages[s] = gen;
    return true;
  }

  /**
   * Changes the capacity live. Pages of the old table move to their slot in the new one;
   * when several land in one slot the most recently used stays. Views returned by `lookup`
   * before a resize no longer track the cache. Throws `RangeError` on a bad size (the cache
   * is then unchanged).
   */
  resize(newSize: number): void {
    checkSize(newSize, this.pageSize);
    if (newSize === this.#size) return;
    const oldData = this.#data;
    const oldPages = this.#pages;
    const oldAges = this.#ages;
    const oldSlots = this.#slots;
    this.#allocate(newSize);
    const ps = this.pageSize;
    for (let o = 0; o < oldSlots; o++) {
      const page = oldPages[o];
      if (page === EMPTY) continue;
      const s = page % this.#slots;
      if (this.#pages[s] !== EMPTY && this.#ages[s] >= oldAges[o]) continue;
      this.#data.set(oldData.subarray(o * ps, (o + 1) * ps), s * ps);
      this.#pages[s] = page;
      this.#ages[s] = oldAges[o];
    }
  }

  /** Allocates empty tables for `size` bytes. */
  #allocate(size: number): void {
    const slots = size / this.pageSize;
    let data: Uint8Array<ArrayBuffer>;
    try {
      data = new Uint8Array(size);
    } catch {
      throw new RangeError(`xbzrle cache: cannot allocate ${size} bytes`);
    }
    this.#onAllocate?.(data.buffer);
    const pages = new Float64Array(slots).fill(EMPTY);
    const ages = new Float64Array(slots);
    this.#size = size;
    this.#slots = slots;
    this.#data = data;
    this.#pages = pages;
    this.#ages = ages;
  }
}
