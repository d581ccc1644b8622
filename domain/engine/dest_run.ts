/**
 * The incoming migration, as the seed's process_incoming_migration_co: read the stream,
 * validate every frame against the local layout before it touches guest memory, load
 * pages and device state, and only then run (or pause) the guest. A failed load leaves
 * the guest in `inmigrate`, never running.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { RunState } from "../../adapters/memory/vcpu_control.ts";
import type { Channel } from "../ports.ts";
import {
  checkConfig,
  checkPageRunLength,
  checkRun,
  checkSectionEnd,
  checkSectionStart,
  FrameReader,
  decodeConfig,
  decodeGlobalState,
  decodeRunHeader,
  decodeSection,
  decodeZeroRun,
  FrameType,
  WireError,
  type WireSection,
} from "../wire/mod.ts";
import { STAT } from "./stats.ts";
import type { MainLink } from "./main_link.ts";

const RUNSTATES: readonly string[] = ["running", "paused", "postmigrate", "finish-migrate"];

/** What one incoming run needs. */
export interface DestinationContext {
  guest: SharedGuest;
  stats: Float64Array;
  link: MainLink;
  autostart: boolean;
}

function isZeroPage(w: Uint32Array, page: number): boolean {
  const end = (page + 1) * 1024;
  for (let i = page * 1024; i < end; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}

/** Loads one incoming stream from `channel`; resolves true when completed. Never throws. */
export async function runDestination(ctx: DestinationContext, channel: Channel): Promise<boolean> {
  const { guest, stats, link } = ctx;
  const vcpu = new VcpuControl(guest);
  const layout = guest.layout;
  const ram8 = guest.ram.map((b) => new Uint8Array(b));
  const ram32 = guest.ram.map((b) => new Uint32Array(b));
  const last = layout[layout.length - 1];
  const totalPages = last ? last.firstPage + last.pages : 0;
  const seen = new Uint8Array(totalPages);
  let seenCount = 0;
  const reader = new FrameReader(channel);
  const start = Date.now();
  stats.fill(0);
  stats[STAT.startTime] = start;
  stats[STAT.total] = totalPages * guest.pageSize;
  const markSeen = (first: number, count: number) => {
    for (let p = first; p < first + count; p++) {
      if (seen[p] === 0) {
        seen[p] = 1;
        seenCount++;
      }
    }
  };
  try {
    if (!await link.transition("setup", "active")) throw new WireError("incoming migration was stopped");
    await reader.readStreamHeader();
    let frame = await reader.next();
    if (frame.type !== FrameType.CONFIG) {
      throw new WireError("migration stream: expected the configuration section first");
    }
    checkConfig(layout, guest.pageSize, decodeConfig(await reader.readPayload()));
    let open: WireSection | null = null;
    let globalState: string | null = null;
    let device = false;
    const runHeader = new Uint8Array(10);
    for (;;) {
      frame = await reader.next();
      if (frame.type === FrameType.EOF) break;
      switch (frame.type) {
        case FrameType.SECTION_START: {
          const s = decodeSection(await reader.readPayload());
          checkSectionStart(open, s);
          open = s;
          break;
        }
        case FrameType.SECTION_END: {
          checkSectionEnd(open, decodeSection(await reader.readPayload()));
          open = null;
          break;
        }
        case FrameType.ZERO_RUN: {
          const r = decodeZeroRun(await reader.readPayload());
          checkRun(layout, r.block, r.firstPage, r.count);
          const w = ram32[r.block];
          for (let p = r.firstPage; p < r.firstPage + r.count; p++) {
            if (!isZeroPage(w, p)) ram8[r.block].fill(0, p * 4096, (p + 1) * 4096);
          }
          markSeen(layout[r.block].firstPage + r.firstPage, r.count);
          stats[STAT.duplicate] += r.count;
          break;
        }
        case FrameType.PAGE_RUN: {
          await reader.readInto(runHeader);
          const r = decodeRunHeader(runHeader);
          checkRun(layout, r.block, r.firstPage, r.count);
          checkPageRunLength(frame.length, r.count, guest.pageSize);
          const off = r.firstPage * guest.pageSize;
          await reader.readInto(ram8[r.block].subarray(off, off + r.count * guest.pageSize));
          markSeen(layout[r.block].firstPage + r.firstPage, r.count);
          stats[STAT.normal] += r.count;
          break;
        }
        case FrameType.GLOBAL_STATE: {
          const rs = decodeGlobalState(await reader.readPayload());
          if (!RUNSTATES.includes(rs)) throw new WireError(`migration stream: unknown runstate '${rs}'`);
          globalState = rs;
          break;
        }
        case FrameType.DEVICE: {
          if (open) throw new WireError("migration stream: device state inside a RAM section");
          vcpu.loadDeviceState(await reader.readPayload());
          device = true;
          break;
        }
        default:
          throw new WireError(`migration stream: unexpected frame type 0x${frame.type.toString(16)}`);
      }
      stats[STAT.transferred] = reader.bytesRead;
    }
    if (open) throw new WireError("migration stream: ended inside a section");
    if (seenCount !== totalPages) {
      throw new WireError(`migration stream: ${totalPages - seenCount} pages were never received`);
    }
    if (!device) throw new WireError("migration stream: no device state received");
    stats[STAT.transferred] = reader.bytesRead;
    // The guest as it arrived is measured by a copy-on-first-write snapshot, so the digest
    // test aid can compare it with the source's without delaying the guest's start.
    vcpu.beginSnapshot();
    link.post({ t: "arrived" });
    // process_incoming_migration_bh: runstate first, then completed.
    if (globalState === null || globalState === "running") {
      vcpu.setRunstate(ctx.autostart ? "running" : "paused");
    } else {
      vcpu.setRunstate((globalState === "finish-migrate" ? "paused" : globalState) as RunState);
    }
    stats[STAT.totalTime] = Date.now() - start;
    return await link.transition("active", "completed");
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    link.post({ t: "error", message: `load of migration failed: ${message}` });
    const status = link.status;
    if (status === "active" || status === "setup") await link.transition(status, "failed");
    stats[STAT.totalTime] = Date.now() - start;
    return false;
  } finally {
    channel.close();
  }
}
