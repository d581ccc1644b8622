/**
 * Which pages back guest RAM (`--huge-pages on|off|auto`, or FERRY_HUGE_PAGES): decided once
 * at start, before RAM is touched, and applied to every RAM block with madvise. `auto` asks
 * the per-boot page-size probe (page_size_probe.ts); `on` asks for huge pages wherever the
 * host can give them. Where huge pages are not chosen, RAM is advised MADV_NOHUGEPAGE so that
 * a kernel in THP mode `always` does not give them anyway (`off` means off).
 *
 * @module
 */

import {
  adviseHugePages,
  HUGE_PAGE_SIZE,
  hugeAlignedBytes,
  type HugePagesMode,
  hugePagesUnavailable,
  parseHugePagesMode,
  type ThpMode,
  thpMode,
} from "./huge_pages.ts";
import { libcUnavailable } from "./libc.ts";
import { cachedProbe, hugePagesWin, type PageSizeProbe } from "./page_size_probe.ts";
import { PAGE_SIZE } from "./layout.ts";

/** The environment variable read when `--huge-pages` is not given. */
export const HUGE_PAGES_ENV = "FERRY_HUGE_PAGES";

/** The decision, as GET /machine reports it (with the bytes read at the time of asking). */
export interface RamBacking {
  /** `--huge-pages` as given (or its default, auto). */
  mode: HugePagesMode;
  /** The page size asked of the kernel for guest RAM: 2 MiB (MADV_HUGEPAGE) or 4096. */
  pageSize: number;
  /** The kernel's THP mode, null when it could not be read. */
  thp: ThpMode | null;
  /** Why this page size, in a sentence. */
  reason: string;
  /** `auto`'s measurement, and whether it came from this boot's cache. */
  probe: (PageSizeProbe & { cached: boolean }) | null;
  /** True when huge pages were asked for but the host cannot give them (logged at warn). */
  fallback: boolean;
}

/** The mode from the flag, else FERRY_HUGE_PAGES, else auto; throws on a bad value. */
export function hugePagesModeFrom(flag: string | undefined): HugePagesMode {
  let env: string | undefined;
  try {
    env = Deno.env.get(HUGE_PAGES_ENV);
  } catch { /* no env permission: the flag or the default */ }
  const text = flag ?? (env || undefined);
  return text === undefined ? "auto" : parseHugePagesMode(text);
}

function gb(x: number): string {
  return `${x.toFixed(2)} GB/s`;
}

/** Decides the page size for `mode` on this host (auto may measure: < 100 ms, once per boot). */
export async function resolveRamBacking(
  mode: HugePagesMode,
  opts: { cacheDir?: string } = {},
): Promise<RamBacking> {
  const thp = thpMode();
  const small = (reason: string, fallback = false, probe: RamBacking["probe"] = null) => ({
    mode,
    pageSize: PAGE_SIZE,
    thp,
    reason,
    probe,
    fallback,
  });
  if (mode === "off") return small("--huge-pages off");
  const unavailable = hugePagesUnavailable();
  if (unavailable) return small(`huge pages unavailable: ${unavailable}`, true);
  if (mode === "on") {
    return {
      mode,
      pageSize: HUGE_PAGE_SIZE,
      thp,
      reason: "--huge-pages on",
      probe: null,
      fallback: false,
    };
  }
  let measuredProbe;
  try {
    measuredProbe = await cachedProbe(opts.cacheDir);
  } catch (e) {
    // No loopback socket (no --allow-net), say: run as if huge pages were not faster.
    return small(`auto: could not measure (${e instanceof Error ? e.message : e})`, true);
  }
  const { probe, cached } = measuredProbe;
  const measured = `socket copies ${gb(probe.hugeGBps)} from huge pages, ${
    gb(probe.smallGBps)
  } from 4 KiB pages (${cached ? "this boot's probe" : "probe"} at ${probe.at})`;
  const p = { ...probe, cached };
  if (hugePagesWin(probe)) {
    return {
      mode,
      pageSize: HUGE_PAGE_SIZE,
      thp,
      reason: `auto: ${measured}`,
      probe: p,
      fallback: false,
    };
  }
  const why = probe.hugeBacked < 2 * HUGE_PAGE_SIZE
    ? "the kernel did not back the probe with huge pages"
    : "huge pages not faster";
  return small(`auto: ${why}; ${measured}`, false, p);
}

/** What applyRamBacking advised. */
export interface RamAdvice {
  /** Bytes advised MADV_HUGEPAGE. */
  huge: number;
  /** True when every buffer's 2 MiB-aligned part was advised MADV_NOHUGEPAGE. */
  noHuge: boolean;
}

/**
 * Advises each buffer's 2 MiB-aligned part as `backing` says (MADV_HUGEPAGE for 2 MiB pages,
 * MADV_NOHUGEPAGE otherwise; nothing without FFI); call before the buffers are touched.
 */
export function applyRamBacking(
  bufs: readonly SharedArrayBuffer[],
  backing: RamBacking,
): RamAdvice {
  if (libcUnavailable("") !== null) return { huge: 0, noHuge: false };
  const huge = backing.pageSize === HUGE_PAGE_SIZE;
  let advised = 0;
  let noHuge = !huge;
  for (const buf of bufs) {
    const n = adviseHugePages(buf, huge);
    if (huge) advised += n;
    else if (n !== hugeAlignedBytes(buf)) noHuge = false;
  }
  return { huge: advised, noHuge };
}
