/**
 * release-ram on the source (QEMU's ram_postcopy_migrated_memory_release and the per-page
 * discard after a page went out in postcopy): pages already on the destination go back to
 * the operating system, so the source's RSS falls while postcopy runs.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { releaseRange } from "../../adapters/memory/release_ram.ts";
import type { PageSender } from "./page_sender.ts";

/** Releases every page that was sent and is not to be sent again (at the switch). */
export function releaseSent(guest: SharedGuest, sender: PageSender): void {
  for (const [b, blk] of guest.layout.entries()) {
    let p = 0;
    while (p < blk.pages) {
      const flat = blk.firstPage + p;
      if (sender.sentOnce[flat] && !sender.bitmap[flat]) {
        const first = p;
        while (
          p < blk.pages && sender.sentOnce[blk.firstPage + p] && !sender.bitmap[blk.firstPage + p]
        ) p++;
        releaseRange(guest.ram[b], first * guest.pageSize, (p - first) * guest.pageSize);
      } else p++;
    }
  }
}

/** Releases the runs written out since the last call (after a flush: the socket has them). */
export function releaseWritten(guest: SharedGuest, sender: PageSender): void {
  const log = sender.releaseLog;
  if (!log) return;
  for (const [b, first, count] of log) {
    releaseRange(guest.ram[b], first * guest.pageSize, count * guest.pageSize);
  }
  log.length = 0;
}
