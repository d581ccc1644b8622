/**
 * The destination's RAM section: the page frames inside an open "ram" record (a run of
 * pages read straight into place, a run of zero pages, an XBZRLE delta, a compressed page
 * inflated on a pool of threads) handed to the {@link RamLoader}, which checks each against
 * the local layout and places it by its placement policy. Compressed pages are held back
 * until the next record boundary at the latest ({@link RamSectionLoader.settle}).
 *
 * @module
 */
import { decodeEncodedPage } from "../wire/encoded_page.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { FrameType } from "../wire/frames.ts";
import { WireError } from "../wire/wire_error.ts";
import { Inflater } from "./inflater.ts";
import { frameRefused, notSentWhole, type SectionLoader } from "./live_section.ts";
import type { RamLoader } from "./ram_loader.ts";
import { RAM_SECTION } from "./ram_section.ts";
import { STAT } from "./stats.ts";

/** The RAM section's loader (see the module doc). */
export class RamSectionLoader implements SectionLoader {
  readonly id = RAM_SECTION.id;
  readonly name = RAM_SECTION.name;
  readonly version = RAM_SECTION.version;
  readonly kind = "live" as const;
  readonly #ram: RamLoader;
  readonly #stats: Float64Array;
  readonly #threads: number;
  readonly #runHeader = new Uint8Array(10);
  /** Compressed pages on their way into RAM. */
  #inflater: Inflater | null = null;

  /** Loads into `ram`; inflates compressed pages on `threads` threads. */
  constructor(ram: RamLoader, stats: Float64Array, threads: number) {
    this.#ram = ram;
    this.#stats = stats;
    this.#threads = threads;
  }

  /** Every version up to this agent's loads the same way. */
  loadSetup(): void {}

  /** One page frame of the open record. */
  async loadState(type: number, length: number, reader: FrameReader): Promise<void> {
    const ram = this.#ram;
    switch (type) {
      case FrameType.PAGE_RUN:
        await ram.pageRun(reader, length, this.#runHeader);
        return;
      case FrameType.ZERO_RUN:
        ram.zeroRun(await reader.readPayload());
        return;
      case FrameType.RAM_USED:
        // Compressed pages still in flight lie below the old end: they may land after it grows.
        ram.ramUsed(await reader.readPayload());
        return;
      case FrameType.GUEST_MODULE:
        ram.guestModule(await reader.readPayload());
        return;
      case FrameType.XBZRLE_PAGE: {
        await this.settle();
        ram.xbzrlePage(await reader.readPayload());
        return;
      }
      case FrameType.COMPRESSED_PAGE: {
        if (ram.postcopy) throw new WireError("migration stream: compressed page in postcopy");
        const e = decodeEncodedPage(await reader.readPayload());
        ram.checkPage(e.block, e.page);
        this.#inflater ??= new Inflater(
          this.#threads,
          (block, page, data) => ram.wholePage(block, page, data),
        );
        this.#stats[STAT.compressPages] += await this.#inflater.add(e.block, e.page, e.data);
        return;
      }
      default:
        throw frameRefused(this.name, type);
    }
  }

  /** A full record for a live section is refused. */
  loadFull(): void {
    throw notSentWhole(this.name);
  }

  /** Places every compressed page sent so far (in order). */
  async settle(): Promise<void> {
    if (!this.#inflater) return;
    this.#stats[STAT.compressPages] += await this.#inflater.drain();
  }

  /** The inflating threads go. */
  loadCleanup(): void {
    this.#inflater?.close();
  }
}
