/**
 * The destination's RAM side: every page-carrying frame (a run of pages, a run of zero
 * pages, an XBZRLE delta, an inflated page, a postcopy discard) checked against the local
 * layout and placed in guest memory, with the three page maps the loader keeps:
 * `written` (stored to since the guest was pre-touched empty, so zero pages need no work),
 * `received` (postcopy: the guest may touch it; shared with the vCPU) and `seen` (precopy:
 * a page missing at EOF fails the load). Where the checked bytes go is its placement policy
 * (ram_placement.ts): straight into RAM, or, once the guest runs here, postcopy's
 * whole-page placement. Counters of the pages it places go to `stats`.
 *
 * @module
 */
import {
  growBlock,
  growUnit,
  ramViews,
  type SharedGuest,
  usedBytes,
  usedPages,
} from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { prefaultDown } from "../../adapters/memory/prefault.ts";
import { xbzrle } from "../codecs/xbzrle.ts";
import { decodeEncodedPage } from "../wire/encoded_page.ts";
import { checkPageRunLength, checkRun, decodeRunHeader, decodeZeroRun } from "../wire/mod.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { decodeDiscard, encodeBitmapDump } from "../wire/postcopy.ts";
import {
  checkGuestModule,
  checkRamUsed,
  decodeGuestModule,
  decodeRamUsed,
} from "../wire/ram_used.ts";
import { WireError } from "../wire/wire_error.ts";
import { CachePlacement } from "./cache_placement.ts";
import {
  DirectPlacement,
  type PageMaps,
  type Placement,
  type PlacementKind,
  PostcopyPlacement,
} from "./ram_placement.ts";
import { STAT } from "./stats.ts";

/** Places incoming pages in one guest's RAM (see the module doc). */
export class RamLoader {
  readonly #guest: SharedGuest;
  readonly #stats: Float64Array;
  readonly #ram8: Uint8Array[];
  readonly #ram32: Uint32Array[];
  readonly #written: Uint8Array;
  readonly #received: Uint8Array;
  /** One byte per page, 1 once a frame carried it (shared with multifd receive threads). */
  readonly #seen: Uint8Array;
  readonly #maps: PageMaps;
  #placement: Placement;
  /** Pages of the whole guest. */
  readonly totalPages: number;
  /** POSTCOPY_ADVISE came: placed pages are marked received for the vCPU. */
  advised = false;
  /** The source's guest module was checked (GUEST_MODULE, or its absence at the first page). */
  #moduleChecked = false;

  /**
   * Views `guest`'s RAM and maps; clears the received map (a new incoming run). A multifd
   * receive thread's loader (`channel`) shares the run's loader's `seen` map and POSTCOPY_ADVISE
   * and leaves the received map alone.
   */
  constructor(
    guest: SharedGuest,
    stats: Float64Array,
    channel?: { seen: SharedArrayBuffer; advise: { readonly advised: boolean } },
  ) {
    this.#guest = guest;
    this.#stats = stats;
    ({ ram8: this.#ram8, ram32: this.#ram32 } = ramViews(guest));
    this.#written = new Uint8Array(guest.written);
    this.#received = new Uint8Array(guest.received);
    if (!channel) this.#received.fill(0);
    const last = guest.layout[guest.layout.length - 1];
    this.totalPages = last ? last.firstPage + last.pages : 0;
    this.#seen = new Uint8Array(channel?.seen ?? new SharedArrayBuffer(this.totalPages));
    const advise = channel?.advise ?? this;
    this.#maps = {
      guest,
      ram8: this.#ram8,
      ram32: this.#ram32,
      written: this.#written,
      received: this.#received,
      advise,
    };
    this.#placement = new DirectPlacement(this.#maps);
  }

  /** The guest's RAM blocks (what every page frame is checked against). */
  get layout(): SharedGuest["layout"] {
    return this.#guest.layout;
  }

  /** Where pages go now (see ram_placement.ts). */
  get placement(): PlacementKind {
    return this.#placement.kind;
  }

  /**
   * Changes where pages go: `postcopy` once the guest runs here (POSTCOPY_LISTEN); `cache`
   * for COLO's checkpoints (a copy of RAM taken now; {@link commitCache} moves them in).
   */
  place(kind: PlacementKind): void {
    this.#placement = kind === "postcopy"
      ? new PostcopyPlacement(this.#maps)
      : kind === "cache"
      ? new CachePlacement(this.#maps)
      : new DirectPlacement(this.#maps);
  }

  /**
   * COLO: the checkpoint is whole; copies its pages — and those `own` (this guest's dirty
   * log) marks — from the cache into RAM (their count).
   */
  commitCache(own?: Uint8Array): number {
    const p = this.#placement;
    if (!(p instanceof CachePlacement)) throw new Error("no checkpoint cache to commit");
    return p.commit(own);
  }

  /** The guest runs here: a page is placed whole, and never over one it already has. */
  get postcopy(): boolean {
    return this.#placement.kind === "postcopy";
  }

  /** Sets the postcopy placement (true) or straight-to-RAM placement (false). */
  set postcopy(on: boolean) {
    this.place(on ? "postcopy" : "ram");
  }

  /** True once page `flat` (guest-wide number) is in place for a running guest. */
  isReceived(flat: number): boolean {
    return this.#received[flat] !== 0;
  }

  /** GUEST_MODULE (RAM's setup): the source's module must be this machine's. */
  guestModule(payload: Uint8Array): void {
    checkGuestModule(this.#guest.wasm?.sha256 ?? null, decodeGuestModule(payload));
    this.#moduleChecked = true;
  }

  /**
   * RAM_USED: a growable block grows to the source's size before pages past its old end land,
   * never past its maximum (checkRamUsed refuses, nothing grows). The pages it grows by are zero
   * here as on the source (a grown wasm page is zero; those the source wrote follow as runs),
   * so they count as arrived. The grown range is prefaulted meanwhile, off this thread
   * (prefault.ts), as a synthetic guest's RAM is pre-touched before the stream.
   */
  ramUsed(payload: Uint8Array): void {
    const guest = this.#guest;
    const u = decodeRamUsed(payload);
    const blocks = guest.layout.map((blk, b) => ({
      name: blk.name,
      size: blk.size,
      used: usedBytes(guest, b),
      unit: growUnit(guest, b),
    }));
    const bytes = checkRamUsed(blocks, u.block, u.bytes);
    const before = usedPages(guest, u.block);
    growBlock(guest, u.block, bytes);
    // Not awaited: it runs beside the stream, and a failure only leaves pages to fault later.
    prefaultDown(guest.ram[u.block], before * PAGE_SIZE, bytes).catch(() => {});
    this.#fitViews(u.block);
    const first = guest.layout[u.block].firstPage;
    this.#markSeen(first + before, usedPages(guest, u.block) - before);
  }

  /** Pages of the whole guest in use (what EOF must have seen). */
  usedTotal(): number {
    return this.#guest.layout.reduce((n, _, b) => n + usedPages(this.#guest, b), 0);
  }

  /**
   * A page frame's run checked against the layout and the block's used size (a growable block
   * grows only by RAM_USED), after the source's module (a WebAssembly guest here refuses a
   * stream whose RAM setup named none). A multifd page channel (`channel`) is read from the
   * main stream's MULTIFD_SETUP on, concurrently with it: its first pages may come before the
   * main stream's RAM setup record is read, so they do not prove GUEST_MODULE absent (a
   * stream without one is refused at the device state then, before the guest runs).
   */
  #checkRun(block: number, firstPage: number, count: number, channel = false): void {
    if (!this.#moduleChecked && !channel) {
      checkGuestModule(this.#guest.wasm?.sha256 ?? null, null);
      this.#moduleChecked = true;
    }
    checkRun(this.#guest.layout, block, firstPage, count);
    const used = usedPages(this.#guest, block);
    if (firstPage + count > used) {
      throw new WireError(
        `run of ${count} pages at page ${firstPage} goes past the used end of RAM block ` +
          `'${this.#guest.layout[block].name}' (${used} pages in use; no RAM_USED grew it)`,
      );
    }
    // A running guest here (COLO's secondary) grows its memory by itself too.
    if (this.#ram8[block].length < used * PAGE_SIZE) this.#fitViews(block);
  }

  /** The views of `block` at its size now; the placements share these arrays. */
  #fitViews(block: number): void {
    const views = ramViews(this.#guest);
    this.#ram8[block] = views.ram8[block];
    this.#ram32[block] = views.ram32[block];
  }

  /**
   * Reads one PAGE_RUN's header (into `header`) and pages from `reader` (a multifd page
   * channel's: `channel`).
   */
  async pageRun(
    reader: FrameReader,
    length: number,
    header: Uint8Array,
    channel = false,
  ): Promise<void> {
    const guest = this.#guest;
    await reader.readInto(header);
    const r = decodeRunHeader(header);
    checkPageRunLength(length, r.count, PAGE_SIZE);
    this.#checkRun(r.block, r.firstPage, r.count, channel);
    const first = guest.layout[r.block].firstPage + r.firstPage;
    await reader.readInto(this.#placement.runTarget(r.block, r.firstPage, r.count));
    this.#placement.runLanded(r.block, r.firstPage, r.count);
    this.#markSeen(first, r.count);
    this.#stats[STAT.normal] += r.count;
  }

  /**
   * A ZERO_RUN: zero pages (only those stored to since the pre-touch need clearing); from a
   * multifd page channel with `channel`.
   */
  zeroRun(payload: Uint8Array, channel = false): void {
    const guest = this.#guest;
    const r = decodeZeroRun(payload);
    this.#checkRun(r.block, r.firstPage, r.count, channel);
    const base = guest.layout[r.block].firstPage;
    this.#placement.zeroPages(r.block, r.firstPage, r.count);
    this.#markSeen(base + r.firstPage, r.count);
    this.#stats[STAT.duplicate] += r.count;
  }

  /** An XBZRLE_PAGE: a delta against the page this side already holds (precopy only). */
  xbzrlePage(payload: Uint8Array): void {
    const guest = this.#guest;
    const e = decodeEncodedPage(payload);
    this.#checkRun(e.block, e.page, 1);
    const flat = guest.layout[e.block].firstPage + e.page;
    if (!this.#seen[flat] || !this.#placement.encoded) {
      throw new WireError("migration stream: XBZRLE page for a page this side does not hold");
    }
    xbzrle.decode(e.data, this.#placement.deltaTarget(e.block, e.page));
    this.#stats[STAT.xbzrlePages]++;
  }

  /** A COMPRESSED_PAGE's place, checked as a run's before it is inflated. */
  checkPage(block: number, page: number): void {
    this.#checkRun(block, page, 1);
  }

  /** Places one whole page (an inflated COMPRESSED_PAGE, already checked against the layout). */
  wholePage(block: number, page: number, data: Uint8Array): void {
    this.#placement.wholePage(block, page, data);
    this.#markSeen(this.#guest.layout[block].firstPage + page, 1);
  }

  /** A POSTCOPY_DISCARD: pages re-dirtied on the source are not received after all. */
  discard(payload: Uint8Array): void {
    if (!this.advised || this.postcopy) {
      throw new WireError("migration stream: discard outside postcopy advise");
    }
    const layout = this.#guest.layout;
    const d = decodeDiscard(payload);
    for (const r of d.ranges) {
      checkRun(layout, d.block, r.first, r.count);
      const first = layout[d.block].firstPage + r.first;
      this.#received.fill(0, first, first + r.count);
    }
  }

  /** The `seen` map, for a multifd receive thread's loader. */
  get seenMap(): SharedArrayBuffer {
    return this.#seen.buffer as SharedArrayBuffer;
  }

  /** Pages in use that no frame carried (precopy: must be 0 at EOF). */
  unseen(): number {
    let n = 0;
    this.#guest.layout.forEach((blk, b) => {
      const end = blk.firstPage + usedPages(this.#guest, b);
      for (let p = blk.firstPage; p < end; p++) n += this.#seen[p] ^ 1;
    });
    return n;
  }

  /** Pages the running guest still lacks (postcopy: must be 0 at EOF). */
  missing(): number {
    let n = 0;
    for (let p = 0; p < this.totalPages; p++) n += this.#received[p];
    return this.totalPages - n;
  }

  /** The received bitmap of block `b` as RECV_BITMAP's answer (postcopy recovery). */
  receivedBitmap(b: number): Uint8Array {
    const blk = this.#guest.layout[b];
    return encodeBitmapDump(
      this.#received.subarray(blk.firstPage, blk.firstPage + blk.pages),
      blk.pages,
    );
  }

  #markSeen(first: number, count: number): void {
    this.#seen.fill(1, first, first + count);
  }
}
