/**
 * The source's hot path: walks the migration bitmap, classifies each dirty page as zero
 * or normal, and sends runs of each: zero runs and short page runs packed into the
 * double-buffered staging (staging.ts), long page runs (up to MAX_RUN_PAGES, 4 MiB) written
 * straight from guest RAM behind their header.
 *
 * @module
 */
import { ramViews, type SharedGuest, usedPages } from "../../adapters/memory/guest_ram.ts";
import { countMarked, syncDirtyLog } from "../../adapters/memory/dirty_log.ts";
import { isZeroPage } from "../../adapters/memory/zero_page.ts";
import { MAX_RUN_PAGES, putPageRunHeader, putZeroRun } from "../wire/mod.ts";
import { ENCODED_PAGE_OVERHEAD, putEncodedPageHeader } from "../wire/encoded_page.ts";
import { encodeRamUsed } from "../wire/ram_used.ts";
import type { EncodedSink, PageEncoder } from "./page_encoder.ts";
import { type ByteSink, Staging, STAGING_BYTES } from "./staging.ts";

const RUN_OVERHEAD = 15; // frame header + run header

/** Bytes of a migration bitmap for `pages` pages (padded to whole 8-byte words). */
export function bitmapBytes(pages: number): number {
  return Math.ceil(pages / 8) * 8;
}
/** Runs of at most this many pages are copied into the staging buffer, not written apart. */
const COPY_RUN_PAGES = 8;

/** Sends dirty pages; owns the migration bitmap (one byte per page). */
export class PageSender {
  /** Migration bitmap: 1 = must be sent. Starts all ones (the bulk stage). */
  readonly bitmap: Uint8Array;
  /** 1 = the page went out at least once (postcopy discards only those). */
  readonly sentOnce: Uint8Array;
  /** Pages marked in the bitmap. */
  pending: number;
  /** Zero pages sent (QMP `duplicate`). */
  duplicate = 0;
  /** Normal pages sent (QMP `normal`). */
  normal = 0;
  readonly #guest: SharedGuest;
  readonly #ram8: Uint8Array[];
  readonly #ram32: Uint32Array[];
  readonly #bitmap32: Uint32Array;
  readonly #dirty: Uint8Array;
  /** The guest's written map (see SharedGuest.written). */
  readonly #written: Uint8Array;
  readonly #blockFirst: number[];
  /**
   * Per block, the pages in use this sender told the destination (RAM_USED); runs never go
   * past it. A fixed block's is its size (never told); a growable one's starts unknown (-1).
   */
  readonly #announced: number[];
  readonly #totalPages: number;
  readonly #staging: Staging;
  #cursor = 0;
  /** release-ram in postcopy: runs sent since the last release (block, first page, count). */
  releaseLog: [number, number, number][] | null = null;
  /** XBZRLE / compression, when on. */
  encoder: PageEncoder | null = null;
  /** The encoder's way into the staging buffer. */
  readonly #encodedSink: EncodedSink = {
    encoded: async (type, block, page, data) => {
      const st = this.#staging;
      await st.ensure(ENCODED_PAGE_OVERHEAD + data.length);
      const off = putEncodedPageHeader(st.view, st.off, type, block, page, data.length);
      st.buf.set(data, off);
      st.off = off + data.length;
    },
    whole: async (block, page, data) => {
      const st = this.#staging;
      await st.ensure(RUN_OVERHEAD + data.length);
      const off = putPageRunHeader(st.view, st.off, block, page, 1, data.length);
      st.buf.set(data, off);
      st.off = off + data.length;
      this.normal++;
    },
  };

  /**
   * Prepares to send `guest` through `sink`. With `shared`, the migration bitmap lives in
   * that SharedArrayBuffer (multifd channels claim pages from it) and is left as it is;
   * otherwise it is private and starts all ones. With `sharedSent`, so does the record of
   * pages sent once (postcopy must discard a re-dirtied page whichever channel sent it).
   */
  constructor(
    guest: SharedGuest,
    sink: ByteSink,
    shared?: SharedArrayBuffer,
    sharedSent?: SharedArrayBuffer,
  ) {
    this.#guest = guest;
    this.#staging = new Staging(sink);
    ({ ram8: this.#ram8, ram32: this.#ram32 } = ramViews(guest));
    const last = guest.layout[guest.layout.length - 1];
    this.#totalPages = last ? last.firstPage + last.pages : 0;
    const padded = bitmapBytes(this.#totalPages);
    this.bitmap = new Uint8Array(shared ?? new ArrayBuffer(padded));
    if (!shared) this.bitmap.fill(1, 0, this.#totalPages);
    this.#bitmap32 = new Uint32Array(this.bitmap.buffer);
    this.sentOnce = new Uint8Array(sharedSent ?? new ArrayBuffer(padded));
    this.pending = shared ? 0 : this.#totalPages;
    // A WebAssembly guest's dirty log is a wasm memory: longer than the map, zero beyond it.
    this.#dirty = new Uint8Array(guest.dirty, 0, padded);
    this.#written = new Uint8Array(guest.written);
    this.#blockFirst = guest.layout.map((blk) => blk.firstPage);
    this.#announced = guest.layout.map((blk, b) => guest.ram[b].growable ? -1 : blk.pages);
  }

  /**
   * Tells the destination (RAM_USED) each growable block's size now where it grew past what
   * this sender told it (the completion: the guest is stopped, so the size is final).
   */
  async announceGrowth(): Promise<void> {
    for (let b = 0; b < this.#announced.length; b++) {
      if (this.#announced[b] !== this.#guest.layout[b].pages) await this.#announce(b);
    }
  }

  /** RAM_USED for block `b` at its size now, unless the destination has it already. */
  async #announce(b: number): Promise<void> {
    const used = usedPages(this.#guest, b);
    if (used === this.#announced[b]) return;
    await this.#staging.append(encodeRamUsed(b, used * this.#guest.pageSize));
    this.#announced[b] = used;
    // Views at the size now (a growable buffer's views without a length read slowly).
    const views = ramViews(this.#guest);
    this.#ram8[b] = views.ram8[b];
    this.#ram32[b] = views.ram32[b];
  }

  /** Writes through a new sink (after a resume); anything staged for the old one is dropped. */
  retarget(sink: ByteSink): void {
    this.#staging.retarget(sink);
  }

  /**
   * Marks every page as to be sent (the bulk stage): of a growable block, the pages in use now
   * (those past it are zero; once the guest grows and writes one, its dirty log marks it).
   */
  markAll(): void {
    this.bitmap.fill(0, 0, this.#totalPages);
    this.pending = 0;
    this.#guest.layout.forEach((blk, b) => {
      const pages = Math.min(blk.pages, usedPages(this.#guest, b));
      this.bitmap.fill(1, blk.firstPage, blk.firstPage + pages);
      this.pending += pages;
    });
    this.#cursor = 0;
  }

  /** Recovery: pages the destination lacks (bit clear in `bits`) must be sent again. */
  loadReceived(block: number, bits: Uint8Array): void {
    const blk = this.#guest.layout[block];
    for (let i = 0; i < blk.pages; i++) {
      const has = (bits[i >> 3] >> (i & 7)) & 1;
      this.bitmap[blk.firstPage + i] = has ? 0 : 1;
    }
    this.pending = countMarked(this.bitmap);
    this.#cursor = 0;
  }

  /** Starts the next walk over the bitmap from page 0. */
  rewind(): void {
    this.#cursor = 0;
  }

  /** Total guest pages. */
  get totalPages(): number {
    return this.#totalPages;
  }

  /** Fetch-and-clears the dirty log into the bitmap; returns the pages found dirty. */
  sync(): number {
    const found = syncDirtyLog(this.#dirty, this.bitmap, this.#written);
    // Recount: pages already pending and dirtied again are counted once.
    this.pending = countMarked(this.bitmap);
    this.#cursor = 0;
    return found;
  }

  /**
   * Sends up to `maxPages` marked pages from the cursor on; returns true when the
   * cursor reached the end of guest RAM (the pass is over).
   */
  async send(maxPages: number): Promise<boolean> {
    const end = await this.#sendBetween(this.#cursor, this.#totalPages, maxPages);
    this.#cursor = end;
    return end >= this.#totalPages;
  }

  /**
   * Sends the marked pages among `[first, first + count)` now (a postcopy page request),
   * then writes out the staging buffer; returns how many went out.
   */
  async sendRange(first: number, count: number): Promise<number> {
    const before = this.pending;
    await this.#sendBetween(first, Math.min(first + count, this.#totalPages), Infinity);
    await this.#staging.swap();
    return before - this.pending;
  }

  /** Ranges, per block, of pages marked again after they were sent once (postcopy discard). */
  discardRanges(): { block: number; ranges: { first: number; count: number }[] }[] {
    return this.#guest.layout.map((blk, block) => {
      const ranges: { first: number; count: number }[] = [];
      let p = blk.firstPage;
      const end = blk.firstPage + blk.pages;
      while (p < end) {
        if (this.bitmap[p] === 1 && this.sentOnce[p] === 1) {
          const first = p;
          while (p < end && this.bitmap[p] === 1 && this.sentOnce[p] === 1) p++;
          ranges.push({ first: first - blk.firstPage, count: p - first });
        } else p++;
      }
      return { block, ranges };
    }).filter((d) => d.ranges.length > 0);
  }

  async #sendBetween(from: number, to: number, maxPages: number): Promise<number> {
    const layout = this.#guest.layout;
    const st = this.#staging;
    const bitmap = this.bitmap;
    const b32 = this.#bitmap32;
    let p = from;
    let sent = 0;
    let b = 0;
    while (b < layout.length && p >= layout[b].firstPage + layout[b].pages) b++;
    while (p < to && sent < maxPages) {
      if ((p & 3) === 0 && p + 4 <= to && b32[p >> 2] === 0) {
        p += 4;
        continue;
      }
      if (bitmap[p] === 0) {
        p++;
        continue;
      }
      while (p >= layout[b].firstPage + layout[b].pages) b++;
      const blk = layout[b];
      const first = p - blk.firstPage;
      // A growable block (a WebAssembly guest's memory): the destination learns of growth
      // before the first page past the size it knows; a page past the size now is zero and
      // unwritten (the bulk stage marks the whole block): if the guest grows and writes it,
      // the dirty log marks it again.
      if (first >= this.#announced[b]) {
        await this.#announce(b);
        if (first >= this.#announced[b]) {
          const tail = Math.min(blk.firstPage + blk.pages, to);
          for (; p < tail; p++) {
            if (bitmap[p] === 1) {
              bitmap[p] = 0;
              this.pending--;
            }
          }
          continue;
        }
      }
      const end = Math.min(blk.firstPage + this.#announced[b], to);
      const zero = this.#isZero(b, first);
      let count = 0;
      if (zero) {
        // The first page was classified just now: the vCPU may have written it since, in
        // which case it is dirty again and goes once more next pass.
        count = this.#runLength(b, p, Math.min(end, p + 0xffff_0000), true);
        this.#take(p, count);
        p += count;
        this.duplicate += count;
        this.releaseLog?.push([b, first, count]);
        for (let i = 0; this.encoder && i < count; i++) {
          this.encoder.zeroPage(blk.firstPage + first + i);
        }
        await st.ensure(RUN_OVERHEAD);
        st.off = putZeroRun(st.view, st.off, b, first, count);
      } else if (this.encoder?.active) {
        // One page at a time through XBZRLE or the compression pool.
        const enc = this.encoder;
        while (
          p < end && bitmap[p] === 1 && count < MAX_RUN_PAGES &&
          (count === 0 || !this.#isZero(b, p - blk.firstPage))
        ) {
          bitmap[p] = 0;
          this.sentOnce[p] = 1;
          const pg = p - blk.firstPage;
          const live = this.#ram8[b].subarray(pg * 4096, (pg + 1) * 4096);
          await enc.page(b, pg, p, live, this.#encodedSink);
          p++;
          count++;
        }
      } else {
        count = this.#runLength(b, p, Math.min(end, p + MAX_RUN_PAGES), false);
        this.#take(p, count);
        p += count;
        this.normal += count;
        const pages = this.#ram8[b].subarray(first * 4096, (first + count) * 4096);
        if (count <= COPY_RUN_PAGES) {
          // A short run (scattered dirty pages: a COLO checkpoint, a random guest's later
          // passes) is copied into the staging buffer: two writes per page cost more than
          // the copy (a checkpoint of ~900 scattered pages: 25–40 ms → see bench scenario O).
          await st.ensure(RUN_OVERHEAD + pages.length);
          st.off = putPageRunHeader(st.view, st.off, b, first, count, 4096);
          st.buf.set(pages, st.off);
          st.off += pages.length;
        } else {
          // The header goes through the staging buffer; the pages go straight from guest
          // RAM to the socket (copying them first costs a third of the throughput here).
          await st.ensure(RUN_OVERHEAD);
          st.off = putPageRunHeader(st.view, st.off, b, first, count, 4096);
          await st.swap();
          await st.queue(pages);
        }
        this.releaseLog?.push([b, first, count]);
      }
      this.pending -= count;
      sent += count;
    }
    if (this.encoder) await this.encoder.drain(this.#encodedSink);
    return Math.min(p, to);
  }

  /** Appends raw bytes (small frames) to the staging buffer. */
  append(bytes: Uint8Array): Promise<void> {
    return this.#staging.append(bytes);
  }

  /**
   * Stages a frame of at most `max` bytes (≤ the staging buffer) built in place: `fill` writes
   * it at the start of the view it is given, synchronously, and returns its length. Saves a
   * large frame's copy and allocation (a disk block read straight into the staging buffer).
   */
  async stage(max: number, fill: (into: Uint8Array) => number): Promise<void> {
    if (max > STAGING_BYTES) throw new RangeError(`a frame of ${max} bytes does not fit staging`);
    const st = this.#staging;
    await st.ensure(max);
    st.off += fill(st.buf.subarray(st.off, st.off + max));
  }

  /** Writes out everything staged and waits until the sink took all of it. */
  flush(): Promise<void> {
    return this.#staging.flush();
  }

  /**
   * How many pages from `p` (global page numbers, in block `b`; `p` itself counted, already
   * classified) up to `end` are marked in the bitmap and, with `zero`, zero pages, else not.
   * The hot loop of a bulk pass: one test of the map and the page per page (a 1 GiB random guest,
   * no socket: 3.6 ms, 2026-12-07).
   */
  #runLength(b: number, p: number, end: number, zero: boolean): number {
    const bitmap = this.bitmap;
    const written = this.#written;
    const ram32 = this.#ram32[b];
    const first = this.#blockFirst[b];
    let q = p + 1;
    for (; q < end && bitmap[q] === 1; q++) {
      if (zeroAt(written, ram32, q, q - first) !== zero) break;
    }
    return q - p;
  }

  /** Clears pages [p, p + count) in the bitmap and records them as sent once. */
  #take(p: number, count: number): void {
    if (count > COPY_RUN_PAGES) {
      this.bitmap.fill(0, p, p + count);
      this.sentOnce.fill(1, p, p + count);
      return;
    }
    for (let q = p; q < p + count; q++) {
      this.bitmap[q] = 0;
      this.sentOnce[q] = 1;
    }
  }

  #isZero(b: number, page: number): boolean {
    return zeroAt(this.#written, this.#ram32[b], this.#blockFirst[b] + page, page);
  }
}

/**
 * Whether page `page` of a block viewed as `ram32` (guest-wide page `flat`) is zero: never
 * written since allocation (zero, and not worth a page fault to read), or all zero now.
 */
function zeroAt(written: Uint8Array, ram32: Uint32Array, flat: number, page: number): boolean {
  return written[flat] === 0 || isZeroPage(ram32, page);
}
