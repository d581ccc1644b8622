/**
 * RAM as a live section (QEMU's "ram" SaveVMHandlers): the setup's bulk stage (every page
 * marked), passes of dirty pages under the rate limit — on the main stream through the page
 * sender, or one pass over the page channels (x-multifd) — what is pending in pages (a
 * dirty-log sync for the exact figure), the rest with the guest stopped, and the page
 * channels' end before postcopy takes over. The page sender, the counters and the page
 * channels stay the session's; this section drives them.
 *
 * @module
 */
import { countMarked } from "../../adapters/memory/dirty_log.ts";
import type { Capabilities } from "../options.ts";
import { FrameType } from "../wire/frames.ts";
import { encodeU32Frame } from "../wire/postcopy.ts";
import { encodeGuestModule } from "../wire/ram_used.ts";
import type { FrameSink, LiveSection, PendingBytes } from "./live_section.ts";
import type { MultifdSource } from "./multifd_source.ts";
import type { PageSender } from "./page_sender.ts";
import type { SourceCounters } from "./source_counters.ts";

/** Pages sent between bookkeeping rounds in precopy (8 MiB). */
export const CHUNK_PAGES = 2048;

/** The RAM section's wire identity (docs/wire-format.md, "Sections"). */
export const RAM_SECTION = { id: 1, name: "ram", version: 1 } as const;

/** What the RAM section uses of its session. */
export interface RamSectionHost {
  readonly caps: Capabilities;
  readonly sender: PageSender;
  readonly counters: SourceCounters;
  /** The page channels (x-multifd), once started. */
  readonly mfd: MultifdSource | null;
  /** Pages go on the page channels. */
  readonly multifdPages: boolean;
  /** migrate-start-postcopy has been asked for. */
  readonly toPostcopy: boolean;
  /** The guest's target page size. */
  readonly pageSize: number;
  /** The guest's module (a WebAssembly guest's SHA-256), or null for a synthetic workload. */
  readonly guestModule: string | null;
  /** Throws on cancel, a return-path error, a failed write or a failed page channel. */
  checkErrors(): void;
}

/** RAM, the first live section (see the module doc). */
export class RamSection implements LiveSection {
  readonly id = RAM_SECTION.id;
  readonly name = RAM_SECTION.name;
  readonly version = RAM_SECTION.version;
  readonly kind = "live" as const;
  readonly #s: RamSectionHost;

  /** The RAM section of `host`'s guest. */
  constructor(host: RamSectionHost) {
    this.#s = host;
  }

  /**
   * The bulk stage: the bitmap starts all dirty; the first sync only clears the dirty log. A
   * WebAssembly guest's module goes first (GUEST_MODULE), so a destination running another
   * refuses the stream before any page.
   */
  async setup(): Promise<void> {
    const sender = this.#s.sender;
    if (this.#s.guestModule !== null) {
      await sender.append(encodeGuestModule(this.#s.guestModule));
    }
    sender.sync();
    sender.markAll();
    this.#s.counters.setupPass();
  }

  /** Pages marked to send (on the page channels, those not claimed yet). */
  pendingEstimate(): PendingBytes {
    const s = this.#s;
    const pages = s.multifdPages ? countMarked(s.sender.bitmap) : s.sender.pending;
    return this.#bytes(pages);
  }

  /** migration_bitmap_sync, then the pages marked. */
  pendingExact(): PendingBytes {
    this.#s.counters.sync();
    return this.#bytes(this.#s.sender.pending);
  }

  /** Some pages on the main stream, or a whole pass over the page channels. */
  async iterate(): Promise<boolean> {
    const s = this.#s;
    if (!s.multifdPages) return await s.sender.send(CHUNK_PAGES);
    await this.#multifdPass();
    return true;
  }

  /** The rest of RAM, with the guest stopped (inside the COMPLETE record). */
  async completePrecopy(_out: FrameSink): Promise<void> {
    const s = this.#s;
    if (s.multifdPages) await this.#multifdPass();
    else while (!await s.sender.send(CHUNK_PAGES)) s.checkErrors();
    // The guest is stopped: its memory's size is final (the device state checks it).
    await s.sender.announceGrowth();
  }

  /**
   * Before postcopy's switchover: as QEMU, the page channels (flushed and synced by the
   * last pass) end; postcopy moves the rest on the main channel and the return path.
   */
  async completePostcopy(_out: FrameSink): Promise<void> {
    if (this.#s.multifdPages) await this.#s.mfd!.finish();
  }

  /** The page encoder's threads and buffers go. */
  cleanup(): void {
    try {
      this.#s.sender.encoder?.close();
    } catch {
      /* no sender was made (the connection failed first) */
    }
  }

  #bytes(pages: number): PendingBytes {
    const s = this.#s;
    const bytes = pages * s.pageSize;
    const wire = s.multifdPages ? bytes : s.counters.pendingCost(pages);
    return s.caps["postcopy-ram"]
      ? { mustPrecopy: 0, postcopyable: bytes, wire }
      : { mustPrecopy: bytes, postcopyable: 0, wire };
  }

  /**
   * One pass over the page channels, then MULTIFD_SYNC on the main stream too. A postcopy
   * request cuts the pass short: the channels send what they claimed and sync.
   */
  async #multifdPass(): Promise<void> {
    const s = this.#s;
    const mfd = s.mfd!;
    const gen = await mfd.pass(() => {
      s.counters.update(Date.now());
      if (s.toPostcopy) {
        mfd.setRate(0);
        mfd.cut();
      }
    });
    await s.sender.append(encodeU32Frame(FrameType.MULTIFD_SYNC, gen));
    s.checkErrors();
  }
}
