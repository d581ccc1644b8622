/**
 * Transparent huge pages for buffers on SharedArrayBuffers: the host's THP mode, advising a
 * buffer's 2 MiB-aligned part MADV_HUGEPAGE (or MADV_NOHUGEPAGE), and how many of a set of
 * buffers' bytes huge pages really back, read from the process's /proc/self/smaps.
 *
 * QEMU advises every guest RAM block MADV_HUGEPAGE (ram_block_add). On some hosts copies
 * between user memory and a socket pay per 4 KiB page (6× slower than from huge pages,
 * docs/architecture.md "Guest RAM and page size"), on others huge pages measured slower:
 * which one a host is, page_size_probe.ts measures.
 *
 * @module
 */

import { alignedRange, libcUnavailable, MADV, madviseRange } from "./libc.ts";
import { readSystemFile } from "./libc.ts";

/** A transparent huge page (x86-64, arm64 with 4 KiB base pages): 2 MiB. */
export const HUGE_PAGE_SIZE = 2 << 20;

/** The `--huge-pages` values. */
export const HUGE_PAGES_MODES = ["on", "off", "auto"] as const;

/** `--huge-pages`: always advise, never, or as a measurement on this host says. */
export type HugePagesMode = typeof HUGE_PAGES_MODES[number];

/** The kernel's THP mode (/sys/kernel/mm/transparent_hugepage/enabled). */
export type ThpMode = "always" | "madvise" | "never";

const THP_ENABLED = "/sys/kernel/mm/transparent_hugepage/enabled";

/** Parses a `--huge-pages` value; throws an Error naming the choices on anything else. */
export function parseHugePagesMode(text: string): HugePagesMode {
  const mode = HUGE_PAGES_MODES.find((m) => m === text.trim().toLowerCase());
  if (!mode) {
    throw new Error(`--huge-pages expects ${HUGE_PAGES_MODES.join(", ")}, got '${text}'`);
  }
  return mode;
}

/** The selected word of a sysfs choice line (`always [madvise] never` → `madvise`). */
export function selectedChoice(line: string): string | null {
  return /\[([^\]]+)\]/.exec(line)?.[1] ?? null;
}

/** The host's THP mode, or null when it cannot be read (no THP in the kernel, no FFI, not Linux). */
export function thpMode(): ThpMode | null {
  const text = readSystemFile(THP_ENABLED);
  const mode = text === null ? null : selectedChoice(text);
  return mode === "always" || mode === "madvise" || mode === "never" ? mode : null;
}

/** Why huge pages cannot back guest RAM in this process, or null when they can. */
export function hugePagesUnavailable(): string | null {
  const ffi = libcUnavailable("to advise huge pages");
  if (ffi) return ffi;
  const mode = thpMode();
  if (mode === null) return `the kernel has no transparent huge pages (${THP_ENABLED})`;
  if (mode === "never") return `the kernel's THP mode is 'never' (${THP_ENABLED})`;
  return null;
}

/**
 * Advises the 2 MiB-aligned part of a freshly allocated, all-zero `buf` MADV_HUGEPAGE (`huge`)
 * or MADV_NOHUGEPAGE; returns the bytes advised (0 if the buffer holds no aligned 2 MiB or
 * madvise is unavailable). The part's pages are dropped first (MADV_DONTNEED; they read as
 * zeros again): an allocator may hand out memory a process used and freed before, already
 * faulted in as 4 KiB pages, and only a first touch after the advice faults in a huge page.
 */
export function adviseHugePages(buf: SharedArrayBuffer | ArrayBuffer, huge: boolean): number {
  // A growable buffer (a WebAssembly guest's memory) has all of its maximum reserved at its
  // address (inaccessible past its size): advised whole now, its pages follow as it grows.
  const length = buf instanceof SharedArrayBuffer && buf.growable
    ? buf.maxByteLength
    : buf.byteLength;
  madviseRange(buf, 0, length, MADV.DONTNEED, HUGE_PAGE_SIZE);
  return madviseRange(buf, 0, length, huge ? MADV.HUGEPAGE : MADV.NOHUGEPAGE, HUGE_PAGE_SIZE);
}

/** Bytes of `buf` that adviseHugePages would advise: its 2 MiB-aligned part. */
export function hugeAlignedBytes(buf: SharedArrayBuffer | ArrayBuffer): number {
  const length = buf instanceof SharedArrayBuffer && buf.growable
    ? buf.maxByteLength
    : buf.byteLength;
  const { start, end } = alignedRange(buf, 0, length, HUGE_PAGE_SIZE);
  return Number(end - start);
}

/** An address range [start, end). */
export interface AddressRange {
  start: bigint;
  end: bigint;
}

/**
 * The 2 MiB-aligned part of each buffer's data (as it is now: a growable one's size): the
 * whole huge pages that can be the buffer's alone.
 */
export function hugeRanges(bufs: readonly (SharedArrayBuffer | ArrayBuffer)[]): AddressRange[] {
  return bufs.map((b) => alignedRange(b, 0, b.byteLength, HUGE_PAGE_SIZE));
}

/**
 * Sums `AnonHugePages` of the mappings in `smaps` (the text of /proc/PID/smaps) over `ranges`
 * (each buffer's 2 MiB-aligned part: hugeRanges). That part, once advised, is usually a
 * mapping of its own (the kernel splits a mapping where advice changes): its huge pages count
 * exactly. A mapping reaching beyond a range counts for at most the part it shares with it,
 * rounded down to whole 2 MiB pages: a buffer the allocator took from memory freed before
 * keeps the advice the freed one had there, so the kernel may merge the advised part with an
 * advised neighbour (seen 2026-12-07: three buffers made in one mapping of 22 MiB, counted 0
 * when only mappings wholly inside a buffer counted).
 */
export function hugeBytesInSmaps(smaps: string, ranges: readonly AddressRange[]): number {
  let bytes = 0;
  let share = 0;
  for (const line of smaps.split("\n")) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) /.exec(line);
    if (head) {
      const start = BigInt("0x" + head[1]);
      const end = BigInt("0x" + head[2]);
      share = 0;
      for (const r of ranges) {
        const lo = start > r.start ? start : r.start;
        const hi = end < r.end ? end : r.end;
        if (hi > lo) share += Number(hi - lo);
      }
      if (share > 0 && share < Number(end - start)) {
        share = Math.floor(share / HUGE_PAGE_SIZE) * HUGE_PAGE_SIZE;
      }
    } else if (share > 0 && line.startsWith("AnonHugePages:")) {
      bytes += Math.min(share, Number(/(\d+)\s*kB/.exec(line)?.[1] ?? 0) * 1024);
    }
  }
  return bytes;
}

/** Bytes of `bufs` backed by huge pages now (hugeBytesInSmaps over /proc/self/smaps); null if unreadable. */
export function hugePageBytes(bufs: readonly (SharedArrayBuffer | ArrayBuffer)[]): number | null {
  const smaps = readSystemFile("/proc/self/smaps");
  return smaps === null ? null : hugeBytesInSmaps(smaps, hugeRanges(bufs));
}
