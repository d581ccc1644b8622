/**
 * The outgoing migration, as the seed's migration_thread: setup, iterate dirty passes
 * while pending ≥ threshold (bandwidth × downtime-limit, re-estimated every 100 ms),
 * then completion with the vCPU stopped; on failure or cancel the guest runs on.
 * Runs inside the source Worker; status changes are asked of the main thread.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { Channel } from "../ports.ts";
import {
  encodeConfig,
  encodeDevice,
  encodeEof,
  encodeGlobalState,
  encodeSection,
  encodeStreamHeader,
  FrameType,
  SectionKind,
} from "../wire/mod.ts";
import { STAT } from "./stats.ts";
import type { LiveParams } from "./messages.ts";
import type { MainLink } from "./main_link.ts";
import { PageSender } from "./page_sender.ts";

const BUFFER_DELAY = 100;
/** Pages sent between bookkeeping rounds (8 MiB). */
const CHUNK_PAGES = 2048;

/** Everything the run needs; `connect` opens the channel (so tests can pass a memory pair). */
export interface SourceContext {
  guest: SharedGuest;
  stats: Float64Array;
  link: MainLink;
  params: LiveParams;
  connect: () => Promise<Channel>;
  /** Called with the writer once it exists, so cancel can shut it down. */
  onWriter: (w: ChannelWriter | null) => void;
}

function section(kind: number, pass: number, end: boolean): Uint8Array {
  return encodeSection(end ? FrameType.SECTION_END : FrameType.SECTION_START, kind, pass);
}

/** Runs one outgoing migration to its end; never throws. */
export async function runSource(ctx: SourceContext): Promise<void> {
  const { guest, stats, link } = ctx;
  const vcpu = new VcpuControl(guest);
  const start = Date.now();
  stats[STAT.startTime] = start;
  stats[STAT.expectedDowntime] = ctx.params.downtimeLimit;
  let vmWasRunning = false;
  let writer: ChannelWriter | null = null;
  try {
    const channel = await ctx.connect();
    writer = new ChannelWriter(channel, { rateLimit: ctx.params.maxBandwidth });
    ctx.onWriter(writer);
    if (link.status === "cancelling") throw new Error("cancelled");
    const sender = new PageSender(guest, writer);
    stats[STAT.total] = sender.totalPages * guest.pageSize;
    // Setup: header, configuration, the first dirty-log sync (bitmap starts all dirty).
    await sender.append(encodeStreamHeader());
    await sender.append(encodeConfig(guest.pageSize, guest.layout));
    await sender.append(section(SectionKind.SETUP, 0, false));
    await sender.append(section(SectionKind.SETUP, 0, true));
    let pass = 1;
    sender.sync();
    sender.pending = sender.totalPages;
    sender.bitmap.fill(1, 0, sender.totalPages);
    stats[STAT.dirtySyncCount] = pass;
    link.post({ t: "pass", pass });
    stats[STAT.setupTime] = Date.now() - start;
    if (!await link.transition("setup", "active")) throw new Error("cancelled");

    let iterStart = Date.now();
    let iterBytes = writer.bytesWritten;
    let rateStart = iterStart;
    let dirtiedSinceRate = 0;
    let inSection = false;
    const updateCounters = (now: number) => {
      stats[STAT.transferred] = writer!.bytesWritten;
      stats[STAT.remaining] = sender.pending * guest.pageSize;
      stats[STAT.duplicate] = sender.duplicate;
      stats[STAT.normal] = sender.normal;
      stats[STAT.throttle] = vcpu.throttle;
      if (now < iterStart + BUFFER_DELAY) return;
      const transferred = writer!.bytesWritten - iterBytes;
      const spent = now - iterStart;
      const bandwidth = transferred / spent; // bytes per ms
      stats[STAT.bandwidth] = bandwidth;
      stats[STAT.thresholdSize] = bandwidth * ctx.params.downtimeLimit;
      stats[STAT.mbps] = transferred * 8 / (spent / 1000) / 1e6;
      if (stats[STAT.dirtyPagesRate] && transferred > 10000) {
        stats[STAT.expectedDowntime] = Math.round(stats[STAT.remaining] / bandwidth);
      }
      iterStart = now;
      iterBytes = writer!.bytesWritten;
    };
    const syncPass = () => {
      dirtiedSinceRate += sender.sync();
      pass++;
      stats[STAT.dirtySyncCount] = pass;
      link.post({ t: "pass", pass });
      const now = Date.now();
      if (now - rateStart >= 1000) {
        stats[STAT.dirtyPagesRate] = Math.round(dirtiedSinceRate * 1000 / (now - rateStart));
        rateStart = now;
        dirtiedSinceRate = 0;
      }
    };

    while (link.status === "active") {
      const threshold = stats[STAT.thresholdSize];
      if (sender.pending * guest.pageSize < threshold || sender.pending === 0) {
        if (inSection) await sender.append(section(SectionKind.ITERATE, pass, true));
        inSection = false;
        syncPass();
        const pending = sender.pending * guest.pageSize;
        if (pending === 0 || pending < threshold) break; // → completion
      }
      if (!inSection) await sender.append(section(SectionKind.ITERATE, pass, false));
      inSection = true;
      await sender.send(CHUNK_PAGES);
      updateCounters(Date.now());
    }
    if (link.status !== "active") throw new Error("cancelled");

    // Completion: stop the vCPU, send the rest unthrottled, then the device state.
    const downtimeStart = Date.now();
    vmWasRunning = vcpu.runstate === "running";
    const runstateBefore = vcpu.runstate;
    vcpu.setRunstate("finish-migrate");
    if (!vcpu.waitParked(5000)) throw new Error("vCPU did not stop");
    writer.setRateLimit(0);
    syncPass();
    await sender.append(section(SectionKind.COMPLETE, pass, false));
    while (!await sender.send(1 << 30));
    await sender.append(section(SectionKind.COMPLETE, pass, true));
    await sender.append(encodeGlobalState(vmWasRunning ? "running" : runstateBefore));
    await sender.append(encodeDevice(vcpu.saveDeviceState()));
    await sender.append(encodeEof());
    await sender.flush();
    await channel.closeWrite();
    updateCounters(Date.now());
    const end = Date.now();
    if (!await link.transition("active", "completed")) throw new Error("cancelled");
    stats[STAT.downtime] = end - downtimeStart;
    stats[STAT.totalTime] = end - start;
    stats[STAT.remaining] = 0;
    const transferTime = stats[STAT.totalTime] - stats[STAT.setupTime];
    if (transferTime > 0) stats[STAT.mbps] = writer.bytesWritten * 8 / transferTime / 1000;
    vcpu.setRunstate("postmigrate");
    channel.close();
  } catch (e) {
    writer?.shutdown();
    const status = link.status;
    if (status !== "cancelling") {
      const message = e instanceof Error ? e.message : String(e);
      link.post({ t: "error", message });
      if (status === "setup" || status === "active" || status === "device") {
        await link.transition(status, "failed");
      }
    }
    // migration_iteration_finish: the guest goes on where it was.
    if (vmWasRunning) vcpu.setRunstate("running");
    else if (vcpu.runstate === "finish-migrate") vcpu.setRunstate("postmigrate");
  } finally {
    vcpu.throttle = 0;
    stats[STAT.throttle] = 0;
    stats[STAT.totalTime] ||= Date.now() - start;
    ctx.onWriter(null);
  }
}
