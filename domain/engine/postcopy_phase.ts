/**
 * The source's postcopy phase (the seed's postcopy_start, then the migration thread in
 * postcopy and postcopy_pause): the live sections' precopy ends (the page channels), stop
 * the vCPU, tell the destination which re-dirtied pages to discard, send the global state
 * and the full sections (the device state) as one package, then serve the pages the destination
 * asks for ahead of the background pages (paced by max-postcopy-bandwidth) until every page
 * is there. Once the package left, the guest may run on the destination, so a broken link
 * pauses (never loses the guest) until a resume brings a new channel and the
 * received-bitmap handshake says what is still missing. It drives a SourceSession.
 *
 * @module
 */
import type { MigrationStatus } from "../state_machine.ts";
import {
  encodeEof,
  encodeSectionEnd,
  encodeSectionStart,
  encodeStreamHeader,
  FrameType,
  SectionKind,
} from "../wire/mod.ts";
import {
  encodeDiscard,
  encodeEmpty,
  encodePackage,
  encodeRecvBitmapRequest,
  encodeU32Frame,
} from "../wire/postcopy.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { Cancelled } from "./cancelled.ts";
import { failureKind } from "./failure.ts";
import type { FrameSink } from "./live_section.ts";
import { PostcopyPacer } from "./postcopy_pacer.ts";
import { releaseSent, releaseWritten } from "./release_sent.ts";
import type { SourceSession } from "./source_session.ts";
import { STAT } from "./stats.ts";

/** Background pages between looks at the request queue (256 KiB), at most. */
const POSTCOPY_CHUNK = 64;

/**
 * An error that fails a postcopy migration: the peer broke the protocol or reported its own
 * failure. Anything else (a broken link above all) pauses: the guest runs on the destination.
 */
export function failsPostcopy(e: unknown): boolean {
  const kind = failureKind(e);
  return kind === "protocol" || kind === "peer" || kind === "cancel";
}

/** One outgoing migration's postcopy phase (see the module doc). */
export class PostcopyPhase {
  readonly #run: SourceSession;
  /** An ITERATE section is open on the current stream. */
  #section = false;

  /** The postcopy phase of `session` (connected, or taking over a paused postcopy). */
  constructor(session: SourceSession) {
    this.#run = session;
  }

  /**
   * postcopy_start: the live sections end their precopy, stop, discard re-dirtied pages,
   * send the global state and the full sections as one package.
   */
  async start(): Promise<void> {
    const run = this.#run;
    const { link, stats, caps } = run.ctx;
    const sender = run.sender;
    for (const section of run.sections) {
      if (section.kind === "live") await section.completePostcopy(sender);
    }
    const timeAtStop = Date.now();
    if (!caps["pause-before-switchover"]) {
      if (!await link.transition("active", "postcopy-active")) throw new Cancelled();
    }
    run.switchover.stopVcpu();
    await run.switchover.maybePause("active", "postcopy-active");
    run.switchover.inactivateDrives();
    run.writer.setRateLimit(0);
    // What postcopy cannot move (the disk) ends here, the guest stopped, in COMPLETE records.
    const pass = run.counters.pass;
    for (const section of run.sections) {
      if (section.kind !== "live" || !section.finishesInPrecopy) continue;
      await sender.append(encodeSectionStart(SectionKind.COMPLETE, pass, section));
      await section.completePrecopy(sender);
      await sender.append(encodeSectionEnd(SectionKind.COMPLETE, pass, section.id));
    }
    if (sender.encoder) sender.encoder.enabled = false; // postcopy places whole pages
    run.exactPending();
    for (const { block, ranges } of sender.discardRanges()) {
      for (const f of encodeDiscard(block, ranges)) await sender.append(f);
    }
    await sender.append(encodeU32Frame(FrameType.PING, 2));
    const pkg: Uint8Array[] = [
      encodeEmpty(FrameType.POSTCOPY_LISTEN),
      run.switchover.globalState(),
    ];
    const into: FrameSink = {
      append: (frame) => {
        pkg.push(frame);
        return Promise.resolve();
      },
    };
    for (const section of run.sections) {
      if (section.kind === "full") await section.completePostcopy(into);
    }
    pkg.push(encodeU32Frame(FrameType.PING, 3), encodeEmpty(FrameType.POSTCOPY_RUN));
    run.checkErrors();
    // The point of no return: once the package (with POSTCOPY_RUN) leaves, the destination
    // may run the guest, so from here on a broken link pauses instead of restarting the
    // source's vCPU, and a cancel is refused. A cancel that came first wins.
    if (!run.ctx.point.cross()) throw new Cancelled();
    run.rp.postcopy = true; // the destination listens from the package on: it may ask for pages
    try {
      await sender.append(encodePackage(pkg));
      await sender.flush();
    } catch (e) {
      // The package never left in full: the destination does not run the guest (it reads
      // a package whole before acting on it), which is the source's again.
      run.ctx.point.giveBack();
      throw e;
    }
    run.writer.setRateLimit(0); // background pages are paced below; requests never wait
    if (caps["release-ram"]) {
      // ram_postcopy_migrated_memory_release: what went out and stayed clean is the
      // destination's now; later pages go back to the OS as soon as they are written out.
      releaseSent(run.ctx.guest, sender);
      sender.releaseLog = [];
    }
    stats[STAT.downtime] = Date.now() - timeAtStop;
  }

  /** Requested pages first, background pages under max-postcopy-bandwidth, until all sent. */
  async loop(): Promise<void> {
    const run = this.#run;
    const { control, params, guest } = run.ctx;
    const pacer = new PostcopyPacer(Date.now());
    for (;;) {
      try {
        run.checkErrors();
        await run.keepalive();
        if (control.pauseRequested) {
          control.pauseRequested = false;
          throw new Error("migrate-pause");
        }
        const sender = run.sender;
        if (!this.#section) {
          // Postcopy pages travel in a section too (one per stream, reopened after a resume).
          const pass = run.counters.pass;
          await sender.append(encodeSectionStart(SectionKind.ITERATE, pass, run.ram));
          this.#section = true;
        }
        if (run.rp.requests.length > 0) {
          const r = run.rp.requests.shift()!;
          await sender.sendRange(r.first, r.count);
          await sender.flush();
          releaseWritten(guest, sender);
        } else if (sender.pending > 0) {
          const limit = params["max-postcopy-bandwidth"];
          const step = pacer.next(limit, Date.now(), PAGE_SIZE, POSTCOPY_CHUNK);
          if ("waitMs" in step) {
            // A request or a pause wakes it early.
            await control.wake.wait(step.waitMs);
            continue;
          }
          const before = run.writer.bytesWritten;
          const done = await sender.send(step.pages);
          await sender.flush();
          releaseWritten(guest, sender);
          pacer.sent(run.writer.bytesWritten - before);
          if (done && sender.pending > 0) sender.rewind();
        } else {
          const pass = run.counters.pass;
          await sender.append(encodeSectionEnd(SectionKind.ITERATE, pass, run.ram.id));
          await sender.append(encodeEof());
          await sender.flush();
          await run.switchover.awaitShut();
          return;
        }
        run.counters.update(Date.now());
      } catch (e) {
        const status = run.ctx.link.status;
        if (failsPostcopy(e) || status !== "postcopy-active") throw e;
        await this.#pause(e);
      }
    }
  }

  /**
   * Takes over a postcopy whose earlier data path died (the main thread paused it and the
   * resume URI is in the mailbox): the recovery handshake, then {@link loop}.
   */
  async takeOver(): Promise<void> {
    await this.#pause(null, "postcopy-paused");
  }

  /**
   * postcopy_pause: keep both guests safe until a resume brings a new channel. `from` is
   * the status now (postcopy-paused already when a new data path takes over).
   */
  async #pause(why: unknown, from: MigrationStatus = "postcopy-active"): Promise<void> {
    const run = this.#run;
    const { link, control } = run.ctx;
    if (why !== null) {
      link.post({
        t: "error",
        message: `postcopy paused: ${why instanceof Error ? why.message : String(why)}`,
      });
    }
    for (;;) {
      if (from !== "postcopy-paused") {
        // Shut the channel first: by the time anyone sees `postcopy-paused` here, the
        // shutdown is on its way to the destination, which pauses on it (QEMU's
        // qemu_file_shutdown comes before its postcopy_pause too).
        run.dropChannel();
        if (!await link.transition(from, "postcopy-paused")) throw new Cancelled();
        control.resumeUri = null;
      }
      control.pauseRequested = false; // this pause answers it
      while (control.resumeUri === null) {
        if (control.cancelled || link.status === "cancelling") throw new Cancelled();
        await control.wake.wait(1000);
      }
      const uri = control.resumeUri;
      if (!await link.transition("postcopy-paused", "postcopy-recover")) throw new Cancelled();
      this.#section = false; // the new stream opens its own
      try {
        await this.#recover(uri);
        return;
      } catch (e) {
        if (failureKind(e) === "cancel") throw e;
        link.post({
          t: "error",
          message: `postcopy recovery failed: ${e instanceof Error ? e.message : e}`,
        });
        from = "postcopy-recover"; // pause is always better than throwing data away
      }
    }
  }

  /** Recovery handshake: received bitmaps, then RESUME → RESUME_ACK → postcopy-active. */
  async #recover(uri: string): Promise<void> {
    const run = this.#run;
    const { guest, link, control } = run.ctx;
    await run.open(uri);
    run.rp.recovering = true;
    const sender = run.sender;
    await sender.append(encodeStreamHeader());
    for (const blk of guest.layout) await sender.append(encodeRecvBitmapRequest(blk.name));
    await sender.flush();
    run.expectReply(); // the bitmaps are the answer
    while (run.rp.bitmapsIn < guest.layout.length) {
      run.checkErrors();
      await control.wake.wait(1000);
    }
    await sender.append(encodeEmpty(FrameType.POSTCOPY_RESUME));
    await sender.flush();
    run.expectReply(); // RESUME_ACK is the answer
    while (!run.rp.resumeAck) {
      run.checkErrors();
      await control.wake.wait(1000);
    }
    run.rp.recovering = false;
    if (!await link.transition("postcopy-recover", "postcopy-active")) throw new Cancelled();
  }
}
