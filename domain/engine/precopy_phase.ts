/**
 * The source's precopy phase (the seed's migration_thread before the switchover, and its
 * completion): the stream's set-up, dirty passes while pending ≥ threshold (the bandwidth
 * over the last five 100 ms windows × downtime-limit), then — unless postcopy was asked for
 * — the completion with the vCPU stopped: the rest of RAM, the device state, EOF past the
 * point of no return, and the destination's SHUT. It drives a {@link SourceSession}.
 *
 * @module
 */
import type { MigrationStatus } from "../state_machine.ts";
import {
  encodeConfig,
  encodeEof,
  encodeSection,
  encodeStreamHeader,
  FrameType,
  SectionKind,
} from "../wire/mod.ts";
import { encodeEmpty, encodeU32Frame } from "../wire/postcopy.ts";
import { Cancelled } from "./cancelled.ts";
import type { SourceSession } from "./source_session.ts";
import { STAT } from "./stats.ts";

/** Pages sent between bookkeeping rounds in precopy (8 MiB). */
const CHUNK_PAGES = 2048;

function section(kind: number, pass: number, end: boolean): Uint8Array {
  return encodeSection(end ? FrameType.SECTION_END : FrameType.SECTION_START, kind, pass);
}

/** What precopy's passes ended in: the completion, or the postcopy phase. */
export type PrecopyNext = "complete" | "postcopy";

/** One outgoing migration's precopy phase (see the module doc). */
export class PrecopyPhase {
  readonly #s: SourceSession;

  /** The precopy phase of `session` (connected). */
  constructor(session: SourceSession) {
    this.#s = session;
  }

  /** The stream's set-up: header, configuration, return path, page channels; `active`. */
  async setup(): Promise<void> {
    const s = this.#s;
    const { guest, stats, link } = s.ctx;
    const sender = s.sender;
    stats[STAT.total] = sender.totalPages * guest.pageSize;
    await sender.append(encodeStreamHeader());
    s.streamStarted = true;
    await sender.append(encodeConfig(guest.pageSize, guest.layout));
    if (s.returnPath) {
      await sender.append(encodeEmpty(FrameType.OPEN_RETURN_PATH));
      await sender.append(encodeU32Frame(FrameType.PING, 1));
    }
    if (s.caps["postcopy-ram"]) {
      await sender.append(encodeU32Frame(FrameType.POSTCOPY_ADVISE, guest.pageSize));
    }
    if (s.wantsMultifd) await s.startMultifd();
    await sender.append(section(SectionKind.SETUP, 0, false));
    await sender.append(section(SectionKind.SETUP, 0, true));
    // The bitmap starts all dirty (bulk stage); the first sync only clears the dirty log.
    sender.sync();
    sender.markAll();
    s.counters.setupPass();
    stats[STAT.setupTime] = Date.now() - s.started;
    if (!await link.transition("setup", "active")) throw new Cancelled();
    s.counters.begin(Date.now());
  }

  /** Dirty passes until pending < threshold (completion) or postcopy is asked for. */
  async iterate(): Promise<PrecopyNext> {
    const s = this.#s;
    const { guest, stats } = s.ctx;
    const sender = s.sender;
    let inSection = false;
    for (;;) {
      s.checkErrors();
      if (s.status !== "active") throw new Cancelled();
      await s.keepalive();
      this.#applyParams();
      if (s.multifdPages) {
        if (!s.toPostcopy) await this.#multifdPass();
        if (s.toPostcopy) {
          // As QEMU before postcopy: the page channels are flushed and synced (the pass and
          // MULTIFD_SYNC above), then end; postcopy runs on the main channel and return path.
          await s.mfd!.finish();
          return "postcopy";
        }
        s.counters.sync();
        s.counters.update(Date.now());
        const pending = sender.pending * guest.pageSize;
        if (pending === 0 || pending < stats[STAT.thresholdSize]) return "complete";
        continue;
      }
      const threshold = stats[STAT.thresholdSize];
      const closeSection = async () => {
        if (inSection) await sender.append(section(SectionKind.ITERATE, s.counters.pass, true));
        inSection = false;
      };
      if (s.toPostcopy) {
        await closeSection();
        return "postcopy";
      }
      if (s.counters.pendingCost(sender.pending) < threshold || sender.pending === 0) {
        await closeSection();
        s.counters.sync();
        const pending = s.counters.pendingCost(sender.pending);
        if (pending === 0 || pending < threshold) return "complete";
      }
      if (!inSection) await sender.append(section(SectionKind.ITERATE, s.counters.pass, false));
      inSection = true;
      await sender.send(CHUNK_PAGES);
      s.counters.update(Date.now());
    }
  }

  /**
   * The completion: stop (and maybe pause), the rest of RAM, the device state, EOF and
   * SHUT; returns the status it ran in (`active`, or `device` after a pause).
   */
  async complete(): Promise<MigrationStatus> {
    const s = this.#s;
    const state = await s.switchover.stopForCompletion();
    const sender = s.sender;
    s.writer.setRateLimit(0);
    s.mfd?.setRate(0);
    s.counters.sync();
    await sender.append(section(SectionKind.COMPLETE, s.counters.pass, false));
    if (s.multifdPages) await this.#multifdPass();
    else while (!await sender.send(CHUNK_PAGES)) s.checkErrors();
    await sender.append(section(SectionKind.COMPLETE, s.counters.pass, true));
    for (const f of s.switchover.stateFrames()) await sender.append(f);
    // The point of no return: once EOF (and the page channels' ends) leave, the destination
    // may run the guest. A cancel that came first wins, and the guest runs on here.
    if (!s.point.cross()) throw new Cancelled();
    try {
      await sender.append(encodeEof());
      await sender.flush();
      if (s.mfd) {
        await s.mfd.finish();
        s.counters.update(Date.now());
      }
    } catch (e) {
      // The stream's end never left in full: the destination cannot run the guest.
      s.point.giveBack();
      throw e;
    }
    await s.switchover.awaitShut();
    await s.channel.closeWrite();
    s.stats[STAT.downtime] = Date.now() - s.switchover.downtimeStart;
    return state;
  }

  /** Parameters changed live: the rate limits and the XBZRLE cache follow. */
  #applyParams(): void {
    const s = this.#s;
    if (!s.control.paramsChanged) return;
    s.control.paramsChanged = false;
    s.writer.setRateLimit(s.params["max-bandwidth"]);
    s.mfd?.setRate(s.params["max-bandwidth"]);
    try {
      s.sender.encoder?.resize(s.params["xbzrle-cache-size"]);
    } catch (e) {
      // As the seed's live xbzrle_cache_resize: the error is reported, the cache stays.
      const message = e instanceof Error ? e.message : String(e);
      s.link.post({ t: "notice", message: `${message}; the cache keeps its size` });
    }
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
