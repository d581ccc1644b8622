/**
 * release-ram: hands guest pages that already went to the destination back to the
 * operating system (QEMU's ram_discard_range: madvise(MADV_DONTNEED)), through Deno's FFI.
 * A released page reads as zeros afterwards. A SharedArrayBuffer's data need not start on
 * a page boundary, so only the OS pages wholly inside a range are released. On RAM backed by
 * transparent huge pages, releasing 4 KiB pages inside a huge page splits its mapping: the
 * released pages leave the process's RSS at once, the others keep their contents.
 *
 * @module
 */

import { libcUnavailable, MADV, madviseRange } from "./libc.ts";

/** Why release-ram cannot work in this process, or null when it can. */
export function releaseRamUnavailable(): string | null {
  return libcUnavailable("to return pages to the operating system");
}

/** Releases bytes [offset, offset + length) of `ram` (whole OS pages only); returns bytes freed. */
export function releaseRange(ram: SharedArrayBuffer, offset: number, length: number): number {
  return madviseRange(ram, offset, length, MADV.DONTNEED);
}
