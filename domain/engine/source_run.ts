/**
 * The outgoing migration, as the seed's migration_thread: setup, iterate dirty passes
 * while pending ≥ threshold (the bandwidth over the last five 100 ms windows ×
 * downtime-limit), then
 * completion with the vCPU stopped — or the postcopy phase (source_postcopy.ts: the
 * device state as one package, page requests ahead of background pages, pause and
 * recovery). On failure or cancel before the switchover the guest runs on. Status changes are asked of the main
 * thread; this code runs inside the source Worker.
 *
 * @module
 */
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { MigrationStatus } from "../state_machine.ts";
import {
  encodeCancel,
  encodeConfig,
  encodeEof,
  encodeSection,
  encodeStreamHeader,
  FrameType,
  SectionKind,
} from "../wire/mod.ts";
import { encodeEmpty, encodeU32Frame } from "../wire/postcopy.ts";
import { STAT } from "./stats.ts";
import { SourceCounters } from "./source_counters.ts";
import { bitmapBytes, PageSender } from "./page_sender.ts";
import { encoderFor } from "./page_encoder.ts";
import { MultifdSource } from "./multifd_source.ts";
import { SourceReturnPath } from "./source_return_path.ts";
import { type PostcopyRun, SourcePostcopy } from "./source_postcopy.ts";
import { Cancelled } from "./cancelled.ts";
import { CANCEL_GRACE_MS, isTwoWayUri, PeerReason } from "./peer_reason.ts";
import { failureKind } from "./failure.ts";
import { PAST_THE_POINT } from "./no_return.ts";
import { SourceLink } from "./source_link.ts";
import type { SourceContext } from "./source_context.ts";
import { Switchover } from "./switchover.ts";
import { DEFAULT_LINK_TIMEOUT_MS } from "./link_watch.ts";

/** Pages sent between bookkeeping rounds in precopy (8 MiB). */
const CHUNK_PAGES = 2048;

function section(kind: number, pass: number, end: boolean): Uint8Array {
  return encodeSection(end ? FrameType.SECTION_END : FrameType.SECTION_START, kind, pass);
}

/** One outgoing migration. */
class SourceRun {
  readonly #ctx: SourceContext;
  readonly #vcpu: VcpuControl;
  /** When this run began (setup-time counts from here, as from QEMU's migration thread). */
  readonly #start = Date.now();
  /** The current connection (channel, writer, keepalive), replaced on a resume. */
  #link: SourceLink | null = null;
  #writer: ChannelWriter | null = null;
  #sender: PageSender | null = null;
  /** The page channels, with x-multifd. */
  #mfd: MultifdSource | null = null;
  #mfdBitmap: SharedArrayBuffer | null = null;
  /** Pages sent once, on any channel (postcopy discards those dirtied again). */
  #mfdSent: SharedArrayBuffer | null = null;
  /** What the destination said on the return path of the current channel. */
  readonly #rp = new SourceReturnPath();
  /** The destination's reason, should it refuse or fail the stream. */
  readonly #reason: PeerReason;
  readonly #switchover: Switchover;
  readonly #counters: SourceCounters;

  constructor(ctx: SourceContext) {
    this.#ctx = ctx;
    this.#vcpu = new VcpuControl(ctx.guest);
    this.#reason = new PeerReason(() => ctx.control.wake.notify());
    this.#switchover = new Switchover({
      caps: ctx.caps,
      link: ctx.link,
      control: ctx.control,
      vcpu: this.#vcpu,
      checkErrors: () => this.#checkErrors(),
      keepalive: () => this.#keepalive(),
      expectReply: () => this.#link?.expectReply(),
      returnPath: this.#useReturnPath,
      shut: () => this.#rp.shut,
    });
    this.#counters = new SourceCounters({
      stats: ctx.stats,
      params: ctx.params,
      caps: ctx.caps,
      pageSize: ctx.guest.pageSize,
      vcpu: this.#vcpu,
      forceAutoConverge: () => ctx.control.forceAutoConverge,
      sender: () => this.#sender!,
      mfd: () => this.#mfd,
      transferred: () => this.#transferred(),
      onPass: (pass) => ctx.link.post({ t: "pass", pass }),
    });
  }

  get #status(): MigrationStatus {
    return this.#ctx.link.status;
  }

  get #useReturnPath(): boolean {
    return this.#ctx.caps["postcopy-ram"] || this.#ctx.caps["return-path"];
  }

  async run(): Promise<void> {
    const { stats, link } = this.#ctx;
    // total-time counts from the migrate command (QEMU's start_time, set with status setup
    // before the thread exists): the main thread stamps it; a context without one starts now.
    stats[STAT.startTime] ||= this.#start;
    stats[STAT.expectedDowntime] = this.#ctx.params["downtime-limit"];
    try {
      if (this.#ctx.recovering) {
        await this.#recoverAfterCrash();
        this.#vcpu.setRunstate("postmigrate");
        return;
      }
      await this.#open();
      await this.#setup();
      const next = await this.#iterate();
      if (next === "postcopy") {
        this.#postcopy = new SourcePostcopy(this.#postcopyRun());
        await this.#postcopy.start();
        await this.#postcopy.loop();
        await this.#finish("postcopy-active");
      } else {
        const state = await this.#switchover.stopForCompletion();
        await this.#completePrecopy();
        await this.#finish(state);
      }
      this.#vcpu.setRunstate("postmigrate");
    } catch (caught) {
      this.#liftThrottle(); // before any final status is read
      if (caught instanceof Cancelled) await this.#endCancelled();
      this.#writer?.shutdown();
      // Beyond QEMU: a destination that refused or failed the stream says why (a peer error).
      const explained = failureKind(caught) !== "cancel" && this.#status !== "cancelling" &&
        isTwoWayUri(this.#ctx.uri);
      const e = explained ? await this.#reason.explain(caught) : caught;
      const kind = failureKind(e);
      // The destination said it failed to load: it does not run the guest.
      if (kind === "peer") this.#ctx.point.giveBack();
      const theirs = this.#ctx.point.crossed;
      // migration_iteration_finish: the guest goes on where it was, unless the destination
      // may run it (past the point of no return). Before the status says failed, so that a
      // client who sees `failed` finds the guest running.
      if (this.#switchover.vmWasRunning && !theirs) this.#vcpu.setRunstate("running");
      else if (this.#vcpu.runstate === "finish-migrate") this.#vcpu.setRunstate("postmigrate");
      const status = this.#status;
      if (kind !== "cancel" && status !== "cancelling") {
        const message = e instanceof Error ? e.message : String(e);
        link.post({ t: "error", message: theirs ? `${message}; ${PAST_THE_POINT}` : message });
        if (status !== "failed" && status !== "completed" && status !== "cancelled") {
          await link.transition(status, "failed");
        }
      }
    } finally {
      this.#mfd?.terminate();
      this.#sender?.encoder?.close();
      this.#liftThrottle();
      stats[STAT.totalTime] ||= Date.now() - stats[STAT.startTime];
      this.#link?.close();
      this.#ctx.onWriter(null);
    }
  }

  /** The stream header is on its way: a CANCEL frame may follow it. */
  #streamStarted = false;

  /**
   * Beyond QEMU: ends a cancelled stream with CANCEL when the writer stands at a frame
   * boundary (Cancelled comes from the run's own checks), so the destination reports a
   * cancel, not a truncated stream. Bounded by the grace the cancel gives the writer.
   */
  async #endCancelled(): Promise<void> {
    const writer = this.#writer;
    if (!this.#streamStarted || !this.#sender || !writer || writer.error) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        (async () => {
          await this.#sender!.append(encodeCancel());
          await this.#sender!.flush();
        })(),
        new Promise<void>((r) => timer = setTimeout(r, CANCEL_GRACE_MS)),
      ]);
    } catch {
      /* the channel broke meanwhile: the destination sees the end of the stream */
    } finally {
      clearTimeout(timer);
    }
  }

  /** The postcopy phase, once migrate-start-postcopy took effect. */
  #postcopy: SourcePostcopy | null = null;

  /** What the postcopy phase may use of this run. */
  #postcopyRun(): PostcopyRun {
    return {
      ctx: this.#ctx,
      counters: this.#counters,
      rp: this.#rp,
      sender: () => this.#sender!,
      writer: () => this.#writer!,
      checkErrors: () => this.#checkErrors(),
      switchover: this.#switchover,
      keepalive: () => this.#keepalive(),
      expectReply: () => this.#link?.expectReply(),
      dropChannel: () => {
        if (!this.#link) return; // dropped already (a resume that could not connect)
        this.#bytesBefore += this.#writer?.bytesWritten ?? 0;
        this.#writer?.shutdown();
        this.#link.close();
        this.#link = null;
      },
      reopen: (uri) => this.#open(uri),
    };
  }

  async #open(uri?: string): Promise<void> {
    // A resumed channel is not rate-limited (the seed's migrate_fd_connect: INT64_MAX on
    // resume); postcopy paces its background pages itself.
    const rateLimit = uri === undefined ? this.#ctx.params["max-bandwidth"] : 0;
    const link = await SourceLink.open(() => this.#ctx.connect(uri), {
      timeoutMs: this.#ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
      rateLimit,
      answers: this.#useReturnPath,
      onExpire: () => this.#ctx.control.wake.notify(),
    });
    this.#link = link;
    const channel = link.channel;
    this.#writer = link.writer;
    this.#ctx.onWriter(this.#writer);
    if (this.#ctx.control.cancelled) throw new Cancelled();
    if (this.#sender) this.#sender.retarget(this.#writer);
    else if (this.#ctx.recovering) this.#sender = this.#recoveredSender(this.#writer);
    else {
      if (this.#ctx.caps["x-multifd"]) {
        const layout = this.#ctx.guest.layout;
        const last = layout[layout.length - 1];
        this.#mfdBitmap = new SharedArrayBuffer(bitmapBytes(last.firstPage + last.pages));
        this.#mfdSent = new SharedArrayBuffer(bitmapBytes(last.firstPage + last.pages));
      }
      this.#sender = new PageSender(
        this.#ctx.guest,
        this.#writer,
        this.#mfdBitmap ?? undefined,
        this.#mfdSent ?? undefined,
      );
      const { caps, params, guest } = this.#ctx;
      this.#sender.encoder = encoderFor(caps, params, guest.ramPageSize > guest.pageSize);
      if (this.#sender.encoder) this.#counters.encoder();
    }
    if (this.#useReturnPath) {
      this.#rp.read(channel, this.#ctx.guest.layout, this.#ctx.guest.pageSize, {
        onBitmap: (block, bits) => this.#sender!.loadReceived(block, bits),
        onRequest: () => this.#ctx.stats[STAT.postcopyRequests]++,
        wake: () => this.#ctx.control.wake.notify(),
        onReason: (text) => this.#reason.set(text),
      });
    } else if (isTwoWayUri(uri ?? this.#ctx.uri)) this.#reason.listen(channel);
  }

  /**
   * The sender of a data path that takes over a paused postcopy: the recovery handshake will
   * mark what the destination lacks; the counters go on from where the dead one left them.
   */
  #recoveredSender(writer: ChannelWriter): PageSender {
    const { guest, stats } = this.#ctx;
    const sender = new PageSender(guest, writer);
    sender.normal = stats[STAT.normal];
    sender.duplicate = stats[STAT.duplicate];
    return sender;
  }

  /**
   * A postcopy whose data path died past the point of no return: the main thread paused it;
   * recover on the resume URI (received bitmaps), then serve what the destination lacks.
   */
  async #recoverAfterCrash(): Promise<void> {
    const { stats } = this.#ctx;
    this.#counters.pass = stats[STAT.dirtySyncCount];
    this.#bytesBefore = stats[STAT.transferred];
    this.#counters.begin(Date.now());
    this.#postcopy = new SourcePostcopy(this.#postcopyRun());
    await this.#postcopy.takeOver();
    await this.#postcopy.loop();
    await this.#finish("postcopy-active");
  }

  /** A keepalive PING when one is due (between frames, wherever the source may wait). */
  async #keepalive(): Promise<void> {
    const sender = this.#sender;
    if (sender) await this.#link?.keepalive((f) => sender.append(f), () => sender.flush());
  }

  #checkErrors(): void {
    if (this.#ctx.control.cancelled || this.#status === "cancelling") throw new Cancelled();
    this.#reason.check();
    this.#rp.check();
    const werr = this.#writer?.error;
    if (werr) throw werr;
    const mfdError = this.#mfd?.error;
    if (mfdError) throw mfdError;
  }

  async #setup(): Promise<void> {
    const { guest, stats, link } = this.#ctx;
    const sender = this.#sender!;
    stats[STAT.total] = sender.totalPages * guest.pageSize;
    await sender.append(encodeStreamHeader());
    this.#streamStarted = true;
    await sender.append(encodeConfig(guest.pageSize, guest.layout));
    if (this.#useReturnPath) {
      await sender.append(encodeEmpty(FrameType.OPEN_RETURN_PATH));
      await sender.append(encodeU32Frame(FrameType.PING, 1));
    }
    if (this.#ctx.caps["postcopy-ram"]) {
      await sender.append(encodeU32Frame(FrameType.POSTCOPY_ADVISE, guest.pageSize));
    }
    if (this.#mfdBitmap) await this.#startMultifd();
    await sender.append(section(SectionKind.SETUP, 0, false));
    await sender.append(section(SectionKind.SETUP, 0, true));
    // The bitmap starts all dirty (bulk stage); the first sync only clears the dirty log.
    sender.sync();
    sender.markAll();
    this.#counters.setupPass();
    stats[STAT.setupTime] = Date.now() - this.#start;
    if (!await link.transition("setup", "active")) throw new Cancelled();
    this.#counters.begin(Date.now());
  }

  /** Bytes sent over every channel of this migration, across resumes. */
  #bytesBefore = 0;
  #transferred(): number {
    return this.#bytesBefore + (this.#writer?.bytesWritten ?? 0) + (this.#mfd?.bytes ?? 0);
  }

  /** Announces the page channels on the main stream, starts them, waits until all are in. */
  async #startMultifd(): Promise<void> {
    const sender = this.#sender!;
    this.#mfd = await MultifdSource.start(this.#ctx, {
      bitmap: this.#mfdBitmap!,
      sent: this.#mfdSent!,
      announce: async (frame) => {
        await sender.append(frame);
        await sender.flush();
      },
    });
    this.#ctx.stats[STAT.multifdBytes] = this.#mfd.bytes;
  }

  /**
   * True when pages go on the page channels. With compress they do not: as in the seed,
   * compression comes first and compressed pages travel on the main channel.
   */
  get #multifdPages(): boolean {
    return this.#mfd !== null && !this.#ctx.caps.compress;
  }

  /** migrate-start-postcopy has been asked for (and postcopy-ram is on). */
  get #toPostcopy(): boolean {
    return this.#ctx.caps["postcopy-ram"] && this.#ctx.control.startPostcopy;
  }

  /**
   * One pass over the page channels, then MULTIFD_SYNC on the main stream too. A postcopy
   * request cuts the pass short: the channels send what they claimed and sync.
   */
  async #multifdPass(): Promise<void> {
    const mfd = this.#mfd!;
    const gen = await mfd.pass(() => {
      this.#counters.update(Date.now());
      if (this.#toPostcopy) {
        mfd.setRate(0);
        mfd.cut();
      }
    });
    await this.#sender!.append(encodeU32Frame(FrameType.MULTIFD_SYNC, gen));
    this.#checkErrors();
  }

  /** Dirty passes until pending < threshold (completion) or postcopy is asked for. */
  async #iterate(): Promise<"complete" | "postcopy"> {
    const { guest, stats, control, caps } = this.#ctx;
    const sender = this.#sender!;
    let inSection = false;
    for (;;) {
      this.#checkErrors();
      if (this.#status !== "active") throw new Cancelled();
      await this.#keepalive();
      if (control.paramsChanged) {
        control.paramsChanged = false;
        this.#writer!.setRateLimit(this.#ctx.params["max-bandwidth"]);
        this.#mfd?.setRate(this.#ctx.params["max-bandwidth"]);
        try {
          this.#sender!.encoder?.resize(this.#ctx.params["xbzrle-cache-size"]);
        } catch (e) {
          // As the seed's live xbzrle_cache_resize: the error is reported, the cache stays.
          const message = e instanceof Error ? e.message : String(e);
          this.#ctx.link.post({ t: "notice", message: `${message}; the cache keeps its size` });
        }
      }
      if (this.#multifdPages) {
        if (!this.#toPostcopy) await this.#multifdPass();
        if (this.#toPostcopy) {
          // As QEMU before postcopy: the page channels are flushed and synced (the pass and
          // MULTIFD_SYNC above), then end; postcopy runs on the main channel and return path.
          await this.#mfd!.finish();
          return "postcopy";
        }
        this.#counters.sync();
        this.#counters.update(Date.now());
        const pending = sender.pending * guest.pageSize;
        if (pending === 0 || pending < stats[STAT.thresholdSize]) return "complete";
        continue;
      }
      const threshold = stats[STAT.thresholdSize];
      const closeSection = async () => {
        if (inSection) await sender.append(section(SectionKind.ITERATE, this.#counters.pass, true));
        inSection = false;
      };
      if (caps["postcopy-ram"] && control.startPostcopy) {
        await closeSection();
        return "postcopy";
      }
      if (this.#counters.pendingCost(sender.pending) < threshold || sender.pending === 0) {
        await closeSection();
        this.#counters.sync();
        const pending = this.#counters.pendingCost(sender.pending);
        if (pending === 0 || pending < threshold) return "complete";
      }
      if (!inSection) await sender.append(section(SectionKind.ITERATE, this.#counters.pass, false));
      inSection = true;
      await sender.send(CHUNK_PAGES);
      this.#counters.update(Date.now());
    }
  }

  /** Precopy completion, part 2: the rest of RAM, the device state, EOF, and SHUT. */
  async #completePrecopy(): Promise<void> {
    const sender = this.#sender!;
    this.#writer!.setRateLimit(0);
    this.#mfd?.setRate(0);
    this.#counters.sync();
    await sender.append(section(SectionKind.COMPLETE, this.#counters.pass, false));
    if (this.#multifdPages) await this.#multifdPass();
    else while (!await sender.send(CHUNK_PAGES)) this.#checkErrors();
    await sender.append(section(SectionKind.COMPLETE, this.#counters.pass, true));
    for (const f of this.#switchover.stateFrames()) await sender.append(f);
    // The point of no return: once EOF (and the page channels' ends) leave, the destination
    // may run the guest. A cancel that came first wins, and the guest runs on here.
    if (!this.#ctx.point.cross()) throw new Cancelled();
    try {
      await sender.append(encodeEof());
      await sender.flush();
      if (this.#mfd) {
        await this.#mfd.finish();
        this.#counters.update(Date.now());
      }
    } catch (e) {
      // The stream's end never left in full: the destination cannot run the guest.
      this.#ctx.point.giveBack();
      throw e;
    }
    await this.#switchover.awaitShut();
    await this.#link!.channel.closeWrite();
    this.#ctx.stats[STAT.downtime] = Date.now() - this.#switchover.downtimeStart;
  }

  async #finish(state: MigrationStatus): Promise<void> {
    const { stats, link } = this.#ctx;
    this.#counters.update(Date.now());
    const end = Date.now();
    // migration_calculate_complete: the final counters are in place before anyone can
    // read `completed`.
    stats[STAT.totalTime] = end - stats[STAT.startTime];
    stats[STAT.remaining] = 0;
    stats[STAT.transferred] = this.#transferred();
    const transferTime = stats[STAT.totalTime] - stats[STAT.setupTime];
    if (transferTime > 0) stats[STAT.mbps] = this.#transferred() * 8 / transferTime / 1000;
    // The throttle ends with the migration: lifted before anyone can read `completed`.
    this.#liftThrottle();
    if (!await link.transition(state, "completed")) throw new Cancelled();
  }

  /** Auto-converge's vCPU throttle back to 0 (and the counter that reports it). */
  #liftThrottle(): void {
    this.#vcpu.throttle = 0;
    this.#ctx.stats[STAT.throttle] = 0;
  }
}

export type { SourceContext };

/** Runs one outgoing migration to its end; never throws. */
export async function runSource(ctx: SourceContext): Promise<void> {
  await new SourceRun(ctx).run();
}
