/**
 * `GET /machine`'s `x-ram-backing`: the page size asked for the guest's RAM, why, what was
 * advised, and the bytes transparent huge pages back now (read from /proc/self/smaps, cached
 * briefly since walking it is not free).
 *
 * @module
 */
import type { SharedGuest } from "./guest_ram.ts";
import { hugePageBytes } from "./huge_pages.ts";
import type { RamAdvice, RamBacking } from "./ram_backing.ts";

/** `GET /machine`'s `x-ram-backing`: the page size asked for RAM and what backs it. */
export interface RamBackingInfo {
  "huge-pages": RamBacking["mode"];
  /** The page size asked of the kernel: 2097152 (MADV_HUGEPAGE) or 4096. */
  "page-size": number;
  thp: RamBacking["thp"];
  reason: string;
  /** Bytes of RAM advised MADV_HUGEPAGE: each block's 2 MiB-aligned part. */
  "advised-bytes": number;
  /** Bytes of RAM huge pages back now (smaps); null when it cannot be read. */
  "huge-page-bytes": number | null;
  probe: {
    "4k-gbps": number;
    "huge-gbps": number;
    "measured-at": string;
    cached: boolean;
  } | null;
}

/**
 * How long a reading of /proc/self/smaps serves (walking it costs ~1–2 ms with RAM on huge
 * pages, 12–22 ms per GiB touched on 4 KiB pages, on the main thread).
 */
const SMAPS_TTL_MS = 1000;

/** A guest's RAM backing as reported, with the last smaps reading. */
export class RamBackingReport {
  readonly #shared: SharedGuest;
  readonly #backing: RamBacking;
  readonly #advice: RamAdvice;
  #huge: { at: number; bytes: number | null } | null = null;

  /** The report of `shared`'s RAM, backed as `backing` decided and advised as `advice` says. */
  constructor(shared: SharedGuest, backing: RamBacking, advice: RamAdvice) {
    this.#shared = shared;
    this.#backing = backing;
    this.#advice = advice;
  }

  /** The page size asked for RAM, why, and the bytes huge pages back (see hugeBytes). */
  info(): RamBackingInfo {
    const b = this.#backing;
    return {
      "huge-pages": b.mode,
      "page-size": b.pageSize,
      thp: b.thp,
      reason: b.reason,
      "advised-bytes": this.#advice.huge,
      "huge-page-bytes": this.hugeBytes(),
      probe: b.probe && {
        "4k-gbps": b.probe.smallGBps,
        "huge-gbps": b.probe.hugeGBps,
        "measured-at": b.probe.at,
        cached: b.probe.cached,
      },
    };
  }

  /**
   * Bytes of RAM backed by huge pages: AnonHugePages of the mappings wholly inside the RAM
   * buffers in /proc/self/smaps, read at most once per SMAPS_TTL_MS; null when smaps cannot be
   * read (no FFI). RAM advised MADV_NOHUGEPAGE has none: 0 then, without walking smaps (which
   * costs ~20 ms per GiB of 4 KiB pages).
   */
  hugeBytes(): number | null {
    if (this.#advice.noHuge) return 0;
    const now = performance.now();
    if (this.#huge === null || now - this.#huge.at > SMAPS_TTL_MS) {
      this.#huge = { at: now, bytes: hugePageBytes(this.#shared.ram) };
    }
    return this.#huge.bytes;
  }
}
