/**
 * The source's precopy phase (the seed's migration_thread before the switchover, and its
 * completion): the stream's set-up, passes while what the sections have left costs at least
 * the switchover budget (the bandwidth over the last five 100 ms windows × downtime-limit, less
 * one more dirty-log sync: source_counters.ts; what is staged goes out first), then —
 * unless postcopy was asked for — the completion with the vCPU stopped: the rest of each
 * live section, the global state, the full sections (device state), EOF past the point of
 * no return, and the destination's SHUT. It drives a {@link SourceSession}'s sections
 * (live_section.ts) and knows none of them by name.
 *
 * @module
 */
import { usedRamBytes } from "../../adapters/memory/guest_ram.ts";
import type { MigrationStatus } from "../state_machine.ts";
import {
  encodeConfig,
  encodeEof,
  encodeSectionEnd,
  encodeSectionStart,
  encodeStreamHeader,
  FrameType,
  SectionKind,
} from "../wire/mod.ts";
import { encodeEmpty, encodeU32Frame } from "../wire/postcopy.ts";
import { Cancelled } from "./cancelled.ts";
import { canSwitchOver, type LiveSection, pendingEstimate } from "./live_section.ts";
import type { SourceSession } from "./source_session.ts";
import { STAT } from "./stats.ts";

/** What precopy's passes ended in: the completion, or the postcopy phase. */
export type PrecopyNext = "complete" | "postcopy";

/** One outgoing migration's precopy phase (see the module doc). */
export class PrecopyPhase {
  readonly #s: SourceSession;
  /** Live sections whose ITERATE record is open on the stream. */
  readonly #open = new Set<LiveSection>();

  /** The precopy phase of `session` (connected). */
  constructor(session: SourceSession) {
    this.#s = session;
  }

  /** The sections that iterate (RAM; later a disk), in stream order. */
  get #live(): LiveSection[] {
    return this.#s.sections.filter((x) => x.kind === "live");
  }

  /**
   * The stream's set-up: header, configuration, return path, page channels, each live
   * section's SETUP record; `active`.
   */
  async setup(): Promise<void> {
    const s = this.#s;
    const { guest, stats, link } = s.ctx;
    const sender = s.sender;
    stats[STAT.total] = usedRamBytes(guest);
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
    if (s.caps["x-colo"]) await sender.append(encodeEmpty(FrameType.COLO_ENABLE));
    if (s.wantsMultifd) await s.startMultifd();
    for (const section of s.sections) {
      if (section.kind !== "live") {
        await section.setup();
        continue;
      }
      await sender.append(encodeSectionStart(SectionKind.SETUP, 0, section));
      await section.setup();
      await sender.append(encodeSectionEnd(SectionKind.SETUP, 0, section.id));
    }
    stats[STAT.setupTime] = Date.now() - s.started;
    // The first pages go out while the main thread makes the status active: its answer takes a
    // message each way (1–2 ms here, ~1 % of a 1 GiB migration at the host's limit) that the
    // stream would otherwise wait out. Every later transition (the completion's, postcopy's,
    // COLO's, a failure's) is asked from `active` after this answer is in (iterate(), fail()),
    // and a cancel that came first refuses it: the passes stop at their next check.
    s.activation = link.transition("setup", "active");
    s.counters.begin(Date.now());
  }

  /**
   * The status allows another chunk: active, or still setup (the main thread has not answered:
   * it moves the status before it answers, and refuses only a status that left setup).
   */
  #mayGoOn(): boolean {
    const status = this.#s.status;
    return status === "active" || status === "setup";
  }

  /** Before any step past the passes: the status is active (else cancelled). */
  async #active(): Promise<void> {
    if (!await this.#s.activation || this.#s.status !== "active") throw new Cancelled();
  }

  /**
   * Passes until what every section has left costs less than the switchover budget (completion) or
   * postcopy is asked for. Each pass, each live section sends inside its ITERATE record.
   */
  async iterate(): Promise<PrecopyNext> {
    const s = this.#s;
    for (;;) {
      s.checkErrors();
      if (!this.#mayGoOn()) throw new Cancelled();
      await s.keepalive();
      this.#applyParams();
      const budget = s.counters.switchoverBudget();
      // The seed: postcopy starts once what cannot move in postcopy (the disk) fits; with
      // nothing of that kind left it starts at once, whatever the budget (which may be < 0).
      if (s.toPostcopy && pendingEstimate(s.sections).mustPrecopy <= Math.max(0, budget)) {
        await this.#closeRecords();
        await this.#active();
        return "postcopy";
      }
      if (canSwitchOver(pendingEstimate(s.sections), budget)) {
        // The pass is over: its records close, what is staged or on its way goes out now,
        // while the guest runs (not in the downtime), then the exact figure (a dirty-log sync).
        await this.#closeRecords();
        await s.sender.flush();
        if (canSwitchOver(s.exactPending(), s.counters.switchoverBudget())) {
          await this.#active();
          return "complete";
        }
      }
      for (const section of this.#live) {
        if (!this.#open.has(section)) {
          // Records do not nest: another section's open record closes first (with RAM
          // alone, its record stays open for the whole pass).
          await this.#closeRecords();
          await s.sender.append(
            encodeSectionStart(SectionKind.ITERATE, s.counters.pass, section),
          );
          this.#open.add(section);
        }
        await section.iterate();
      }
      s.counters.update(Date.now());
    }
  }

  /** Closes the open ITERATE records (the end of a pass). */
  async #closeRecords(): Promise<void> {
    const s = this.#s;
    for (const section of this.#open) {
      await s.sender.append(encodeSectionEnd(SectionKind.ITERATE, s.counters.pass, section.id));
    }
    this.#open.clear();
  }

  /**
   * The completion: stop (and maybe pause), the rest of each live section in its COMPLETE
   * record, the global state, the full sections (the device state), EOF and SHUT; returns
   * the status it ran in (`active`, or `device` after a pause). With `keepOpen` (COLO) the
   * connection stays open both ways for the checkpoints.
   */
  async complete(keepOpen = false): Promise<MigrationStatus> {
    const s = this.#s;
    const state = await s.switchover.stopForCompletion();
    const sender = s.sender;
    s.writer.setRateLimit(0);
    s.mfd?.setRate(0);
    s.exactPending();
    const pass = s.counters.pass;
    for (const section of this.#live) {
      await sender.append(encodeSectionStart(SectionKind.COMPLETE, pass, section));
      await section.completePrecopy(sender);
      await sender.append(encodeSectionEnd(SectionKind.COMPLETE, pass, section.id));
    }
    await sender.append(s.switchover.globalState());
    for (const section of s.sections) {
      if (section.kind === "full") await section.completePrecopy(sender);
    }
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
    if (!keepOpen) await s.channel.closeWrite();
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
}
