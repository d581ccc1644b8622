/**
 * Where the destination puts an incoming page: the RAM loader's placement policy. The loader
 * checks every frame against the layout and keeps the page maps; a placement decides where
 * the checked bytes go and what placing them means:
 *
 * - `ram` ({@link DirectPlacement}): straight into guest RAM (precopy: the guest does not run
 *   yet). A run is read into RAM itself, with no copy; under postcopy-advise each placed
 *   page is marked received for the vCPU.
 * - `postcopy` ({@link PostcopyPlacement}): the guest runs here. A run lands aside and each
 *   page the guest lacks is placed whole, marked received (which wakes a vCPU that waits on
 *   it); a page it already has is never overwritten; deltas and compressed pages are refused.
 * - `cache` (CachePlacement, cache_placement.ts, for COLO's checkpoints): pages land in a
 *   copy of RAM and reach RAM only when a checkpoint is committed.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { markReceivedRange } from "../../adapters/memory/vcpu_control.ts";
import { isZeroPage } from "../../adapters/memory/zero_page.ts";
import { MAX_RUN_PAGES } from "../wire/frames.ts";
import { WireError } from "../wire/wire_error.ts";

/** The kinds of placement (see the module doc). */
export type PlacementKind = "ram" | "postcopy" | "cache";

/**
 * The biggest PAGE_RUN (MAX_RUN_PAGES pages), landed aside in postcopy. A reused 4 MiB buffer,
 * allocated by the first run that lands: not advised huge pages (see STAGING in staging.ts for
 * why and the figures). A postcopy source sends at most 64 pages between looks at its request
 * queue, so in practice runs there are small and little of it is touched.
 */
const RUN_BYTES = MAX_RUN_PAGES * PAGE_SIZE;

/** The guest's RAM and the page maps a placement writes (owned by the RAM loader). */
export interface PageMaps {
  readonly guest: SharedGuest;
  /** Each RAM block's bytes. */
  readonly ram8: readonly Uint8Array[];
  /** Each RAM block's words (zero-page checks). */
  readonly ram32: readonly Uint32Array[];
  /** Stored to since the pre-touch (one byte per page, guest-wide). */
  readonly written: Uint8Array;
  /** Postcopy: the guest may touch it (shared with the vCPU). */
  readonly received: Uint8Array;
  /**
   * Whose `advised` says POSTCOPY_ADVISE came (placed pages are then marked received for the
   * vCPU): the run's loader, or a page channel's flag. An object read, not a closure called:
   * every loader is the same class, so code compiled in the warm-up still fits a migration's.
   */
  readonly advise: { readonly advised: boolean };
}

/** Where checked pages go (see the module doc). All positions are checked by the caller. */
export interface Placement {
  readonly kind: PlacementKind;
  /** Pages may be rebuilt from what this side holds (XBZRLE deltas, compressed pages). */
  readonly encoded: boolean;
  /** The view a run of `count` pages at page `page` of `block` is read into. */
  runTarget(block: number, page: number, count: number): Uint8Array;
  /** The run's bytes are in the view {@link runTarget} gave: places them. */
  runLanded(block: number, page: number, count: number): void;
  /** `count` zero pages at page `page` of `block`. */
  zeroPages(block: number, page: number, count: number): void;
  /** One whole page (an inflated compressed page). */
  wholePage(block: number, page: number, data: Uint8Array): void;
  /** The held page an XBZRLE delta applies to (only when {@link encoded}). */
  deltaTarget(block: number, page: number): Uint8Array;
}

/** Straight into guest RAM: the guest does not run yet (precopy). */
export class DirectPlacement implements Placement {
  readonly kind = "ram";
  readonly encoded = true;
  readonly #m: PageMaps;

  /** Places into `maps`' RAM. */
  constructor(maps: PageMaps) {
    this.#m = maps;
  }

  /** The RAM itself: the socket's bytes land in place. */
  runTarget(block: number, page: number, count: number): Uint8Array {
    const m = this.#m;
    const first = m.guest.layout[block].firstPage + page;
    m.written.fill(1, first, first + count);
    return m.ram8[block].subarray(page * PAGE_SIZE, (page + count) * PAGE_SIZE);
  }

  /** Under postcopy-advise the run is received for the vCPU. */
  runLanded(block: number, page: number, count: number): void {
    const m = this.#m;
    if (m.advise.advised) markReceivedRange(m.guest, m.guest.layout[block].firstPage + page, count);
  }

  /** Clears only pages stored to since the pre-touch (the others are zero already). */
  zeroPages(block: number, page: number, count: number): void {
    const m = this.#m;
    const base = m.guest.layout[block].firstPage;
    for (let p = page; p < page + count; p++) zeroPage(m, block, p);
    if (m.advise.advised) markReceivedRange(m.guest, base + page, count);
  }

  /** Copies the page into RAM. */
  wholePage(block: number, page: number, data: Uint8Array): void {
    const m = this.#m;
    const flat = m.guest.layout[block].firstPage + page;
    m.written[flat] = 1;
    m.ram8[block].set(data, page * PAGE_SIZE);
    if (m.advise.advised) markReceivedRange(m.guest, flat, 1);
  }

  /** The page in RAM (it changes: stored to). */
  deltaTarget(block: number, page: number): Uint8Array {
    const m = this.#m;
    m.written[m.guest.layout[block].firstPage + page] = 1;
    return m.ram8[block].subarray(page * PAGE_SIZE, (page + 1) * PAGE_SIZE);
  }
}

/** The guest runs here: each missing page placed whole, never one it has (postcopy). */
export class PostcopyPlacement implements Placement {
  readonly kind = "postcopy";
  readonly encoded = false;
  readonly #m: PageMaps;
  #landing: Uint8Array | null = null;

  /** Places into `maps`' RAM, marking pages received. */
  constructor(maps: PageMaps) {
    this.#m = maps;
  }

  /** A landing buffer: the run is placed page by page once it is whole. */
  runTarget(_block: number, _page: number, count: number): Uint8Array {
    this.#landing ??= new Uint8Array(RUN_BYTES);
    return this.#landing.subarray(0, count * PAGE_SIZE);
  }

  /** Places each page the guest lacks, marking it received (a waiting vCPU wakes). */
  runLanded(block: number, page: number, count: number): void {
    const m = this.#m;
    const landed = this.#landing!;
    const ram = m.ram8[block];
    const first = m.guest.layout[block].firstPage + page;
    for (let i = 0; i < count; i++) {
      if (m.received[first + i]) continue;
      const at = (page + i) * PAGE_SIZE;
      ram.set(landed.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), at);
      m.written[first + i] = 1;
      markReceivedRange(m.guest, first + i, 1);
    }
  }

  /** Zeroes each page the guest lacks, marking it received. */
  zeroPages(block: number, page: number, count: number): void {
    const m = this.#m;
    const base = m.guest.layout[block].firstPage;
    for (let p = page; p < page + count; p++) {
      if (m.received[base + p]) continue;
      zeroPage(m, block, p);
      if (m.advise.advised) markReceivedRange(m.guest, base + p, 1);
    }
  }

  /** Refused: a running guest's pages are placed from whole runs only. */
  wholePage(): void {
    throw new WireError("migration stream: a single encoded page in postcopy");
  }

  /** Never asked: deltas are refused in postcopy (not {@link encoded}). */
  deltaTarget(): Uint8Array {
    throw new WireError("migration stream: XBZRLE page for a page this side does not hold");
  }
}

/** Zeroes page `p` of `block` unless it was never stored to (then it is zero already). */
function zeroPage(m: PageMaps, block: number, p: number): void {
  const flat = m.guest.layout[block].firstPage + p;
  if (m.written[flat] !== 0 && !isZeroPage(m.ram32[block], p)) {
    m.ram8[block].fill(0, p * PAGE_SIZE, (p + 1) * PAGE_SIZE);
  }
}
