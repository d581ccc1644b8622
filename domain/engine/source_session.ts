/**
 * One outgoing migration's session: what every phase (precopy, postcopy, later COLO) drives
 * and none owns — the connection (channel, writer, keepalive) and its return path, the
 * sections that move (live_section.ts: RAM, then the device state), the page sender and the
 * page channels, the counters, the vCPU and its switchover, the point of no return, and
 * cancellation. A phase receives the session; the session knows no phase.
 * A resume replaces the connection; everything else lives as long as the migration's run.
 *
 * @module
 */
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { Capabilities } from "../options.ts";
import type { Channel } from "../ports.ts";
import type { MigrationStatus } from "../state_machine.ts";
import { encodeCancel } from "../wire/mod.ts";
import { Cancelled } from "./cancelled.ts";
import { DEFAULT_LINK_TIMEOUT_MS } from "./link_watch.ts";
import type { MainLink } from "./main_link.ts";
import type { LiveParams } from "./messages.ts";
import { MultifdSource } from "./multifd_source.ts";
import type { PointOfNoReturn } from "./no_return.ts";
import { encoderFor } from "./page_encoder.ts";
import { bitmapBytes, PageSender } from "./page_sender.ts";
import { CANCEL_GRACE_MS, isTwoWayUri, PeerReason } from "./peer_reason.ts";
import { DeviceSection } from "./device_section.ts";
import { DiskSection, type DiskSectionHost } from "./disk_section.ts";
import { type LiveSection, type PendingBytes, pendingExact } from "./live_section.ts";
import { RamSection, type RamSectionHost } from "./ram_section.ts";
import type { SourceContext } from "./source_context.ts";
import type { SourceControl } from "./source_control.ts";
import { SourceCounters } from "./source_counters.ts";
import { SourceLink } from "./source_link.ts";
import { SourceReturnPath } from "./source_return_path.ts";
import { STAT } from "./stats.ts";
import { Switchover, type SwitchoverRun } from "./switchover.ts";

/** One outgoing migration's session (see the module doc). */
export class SourceSession implements SwitchoverRun, RamSectionHost, DiskSectionHost {
  readonly ctx: SourceContext;
  readonly vcpu: VcpuControl;
  /** When this run began (setup-time counts from here, as from QEMU's migration thread). */
  readonly started = Date.now();
  /** What the destination said on the return path of the current channel. */
  readonly rp = new SourceReturnPath();
  /** The destination's reason, should it refuse or fail the stream. */
  readonly reason: PeerReason;
  /** Stopping the vCPU, pause-before-switchover, the state frames, the SHUT. */
  readonly switchover: Switchover;
  readonly counters: SourceCounters;
  /** RAM, the first live section. */
  readonly ram: RamSection;
  /**
   * What moves, in stream order: the phases drive this list (a disk or COLO's extra state
   * is one more entry here, not a branch in a phase).
   */
  readonly sections: readonly LiveSection[];
  /** The stream header is on its way: a CANCEL frame may follow it. */
  streamStarted = false;
  /** setup → active as precopy's set-up asked for it, answered later (precopy_phase.ts). */
  activation: Promise<boolean> = Promise.resolve(true);
  /** The current connection (channel, writer, keepalive), replaced on a resume. */
  #conn: SourceLink | null = null;
  #writer: ChannelWriter | null = null;
  #sender: PageSender | null = null;
  /** The page channels, with x-multifd. */
  #mfd: MultifdSource | null = null;
  #mfdBitmap: SharedArrayBuffer | null = null;
  /** Pages sent once, on any channel (postcopy discards those dirtied again). */
  #mfdSent: SharedArrayBuffer | null = null;
  /** Bytes sent over earlier connections of this migration (before resumes). */
  #bytesBefore = 0;

  /** A session for the migration `ctx` describes; nothing is connected yet. */
  constructor(ctx: SourceContext) {
    this.ctx = ctx;
    this.vcpu = new VcpuControl(ctx.guest);
    this.reason = new PeerReason(() => ctx.control.wake.notify());
    this.switchover = new Switchover(this, ctx.guest.drives);
    this.counters = new SourceCounters({
      stats: ctx.stats,
      params: ctx.params,
      caps: ctx.caps,
      pageSize: ctx.guest.pageSize,
      vcpu: this.vcpu,
      forceAutoConverge: () => ctx.control.forceAutoConverge,
      sender: () => this.#sender!,
      mfd: () => this.#mfd,
      transferred: () => this.transferred(),
      onPass: (pass) => ctx.link.post({ t: "pass", pass }),
    });
    this.ram = new RamSection(this);
    const drives = ctx.guest.drives;
    this.sections = [
      this.ram,
      ...(DiskSection.applies(ctx.caps, drives) ? [new DiskSection(this, drives!)] : []),
      new DeviceSection(this.vcpu),
    ];
  }

  /** The guest's target page size. */
  get pageSize(): number {
    return this.ctx.guest.pageSize;
  }

  /** The guest's module (a WebAssembly guest's SHA-256), or null for a synthetic workload. */
  get guestModule(): string | null {
    return this.ctx.guest.wasm?.sha256 ?? null;
  }

  /** The capabilities of this migration. */
  get caps(): Capabilities {
    return this.ctx.caps;
  }

  /** `block-incremental`: the disk section sends only the blocks written since the base. */
  get incremental(): boolean {
    return this.ctx.params["block-incremental"];
  }

  /** The live parameters (updated in place by the mailbox). */
  get params(): LiveParams {
    return this.ctx.params;
  }

  /** The shared counters. */
  get stats(): Float64Array {
    return this.ctx.stats;
  }

  /** The main thread: status transitions, errors, notices. */
  get link(): MainLink {
    return this.ctx.link;
  }

  /** The mailbox: cancel, postcopy, continue, pause, resume, parameter changes. */
  get control(): SourceControl {
    return this.ctx.control;
  }

  /** The migration's point of no return, shared with the main thread's cancel. */
  get point(): PointOfNoReturn {
    return this.ctx.point;
  }

  /** The migration's status as the main thread last said it. */
  get status(): MigrationStatus {
    return this.ctx.link.status;
  }

  /** A return path is open (postcopy-ram, return-path, x-colo): the destination answers. */
  get returnPath(): boolean {
    const caps = this.ctx.caps;
    return caps["postcopy-ram"] || caps["return-path"] || caps["x-colo"];
  }

  /** The destination's SHUT value, or null before it. */
  shut(): number | null {
    return this.rp.shut;
  }

  /** The page sender (from the first connection on). */
  get sender(): PageSender {
    if (!this.#sender) throw new Error("the source session has no sender yet");
    return this.#sender;
  }

  /** The current connection's writer. */
  get writer(): ChannelWriter {
    if (!this.#writer) throw new Error("the source session has no channel");
    return this.#writer;
  }

  /** The current connection's channel. */
  get channel(): Channel {
    if (!this.#conn) throw new Error("the source session has no channel");
    return this.#conn.channel;
  }

  /** True once a connection was made: only then can the destination have said why it stopped. */
  get connected(): boolean {
    return this.#conn !== null;
  }

  /** The page channels (x-multifd), once started. */
  get mfd(): MultifdSource | null {
    return this.#mfd;
  }

  /**
   * True when pages go on the page channels. With compress they do not: as in the seed,
   * compression comes first and compressed pages travel on the main channel.
   */
  get multifdPages(): boolean {
    return this.#mfd !== null && !this.ctx.caps.compress;
  }

  /** migrate-start-postcopy has been asked for (and postcopy-ram is on). */
  get toPostcopy(): boolean {
    return this.ctx.caps["postcopy-ram"] && this.ctx.control.startPostcopy;
  }

  /**
   * Connects (to the migration's URI, or `uri` on a resume) and starts reading the return
   * path; the first connection makes the page sender, a later one retargets it.
   */
  async open(uri?: string): Promise<void> {
    const ctx = this.ctx;
    // A resumed channel is not rate-limited (the seed's migrate_fd_connect: INT64_MAX on
    // resume); postcopy paces its background pages itself.
    const rateLimit = uri === undefined ? ctx.params["max-bandwidth"] : 0;
    const conn = await SourceLink.open(() => ctx.connect(uri), {
      timeoutMs: ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
      rateLimit,
      answers: this.returnPath,
      onExpire: () => ctx.control.wake.notify(),
    });
    this.#conn = conn;
    this.#writer = conn.writer;
    ctx.onWriter(this.#writer);
    if (ctx.control.cancelled) throw new Cancelled();
    if (this.#sender) this.#sender.retarget(this.#writer);
    else if (ctx.recovering) this.#sender = this.#recoveredSender(this.#writer);
    else this.#newSender(this.#writer);
    if (this.returnPath) {
      this.rp.read(conn.channel, ctx.guest.layout, ctx.guest.pageSize, {
        onBitmap: (block, bits) => this.sender.loadReceived(block, bits),
        onRequest: () => ctx.stats[STAT.postcopyRequests]++,
        wake: () => ctx.control.wake.notify(),
        onReason: (text) => this.reason.set(text),
      });
    } else if (isTwoWayUri(uri ?? ctx.uri)) this.reason.listen(conn.channel);
  }

  /** The first connection's page sender (with the page channels' bitmaps, with x-multifd). */
  #newSender(writer: ChannelWriter): void {
    const { caps, params, guest } = this.ctx;
    if (caps["x-multifd"]) {
      const last = guest.layout[guest.layout.length - 1];
      this.#mfdBitmap = new SharedArrayBuffer(bitmapBytes(last.firstPage + last.pages));
      this.#mfdSent = new SharedArrayBuffer(bitmapBytes(last.firstPage + last.pages));
    }
    const sender = new PageSender(
      guest,
      writer,
      this.#mfdBitmap ?? undefined,
      this.#mfdSent ?? undefined,
    );
    this.#sender = sender;
    sender.encoder = encoderFor(caps, params, guest.ramPageSize > guest.pageSize);
    if (sender.encoder) this.counters.encoder();
  }

  /**
   * The sender of a data path that takes over a paused postcopy: the recovery handshake will
   * mark what the destination lacks; the counters go on from where the dead one left them.
   */
  #recoveredSender(writer: ChannelWriter): PageSender {
    const { guest, stats } = this.ctx;
    const sender = new PageSender(guest, writer);
    sender.normal = stats[STAT.normal];
    sender.duplicate = stats[STAT.duplicate];
    return sender;
  }

  /** The page channels are wanted (x-multifd): their shared bitmaps exist. */
  get wantsMultifd(): boolean {
    return this.#mfdBitmap !== null;
  }

  /** Announces the page channels on the main stream, starts them, waits until all are in. */
  async startMultifd(): Promise<void> {
    const sender = this.sender;
    this.#mfd = await MultifdSource.start(this.ctx, {
      bitmap: this.#mfdBitmap!,
      sent: this.#mfdSent!,
      announce: async (frame) => {
        await sender.append(frame);
        await sender.flush();
      },
    });
    this.ctx.stats[STAT.multifdBytes] = this.#mfd.bytes;
  }

  /**
   * What every section has left, exactly (RAM syncs its dirty log), recorded as the history
   * the convergence verdict reads.
   */
  exactPending(): PendingBytes {
    const pending = pendingExact(this.sections);
    this.counters.recordPending(pending.mustPrecopy + pending.postcopyable);
    return pending;
  }

  /** Throws on cancel, a return-path error, a failed write or a failed page channel. */
  checkErrors(): void {
    if (this.ctx.control.cancelled || this.status === "cancelling") throw new Cancelled();
    this.reason.check();
    this.rp.check();
    const werr = this.#writer?.error;
    if (werr) throw werr;
    const mfdError = this.#mfd?.error;
    if (mfdError) throw mfdError;
  }

  /** A keepalive PING when one is due (between frames, wherever the source may wait). */
  async keepalive(): Promise<void> {
    const sender = this.#sender;
    if (sender) await this.#conn?.keepalive((f) => sender.append(f), () => sender.flush());
  }

  /** Something must arrive on the return path within the link timeout. */
  expectReply(): void {
    this.#conn?.expectReply();
  }

  /** The link timeout (ms) of this migration. */
  get linkTimeoutMs(): number {
    return this.ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS;
  }

  /** The link watch stops; the connection stays open (COLO's heartbeat takes over). */
  unwatch(): void {
    this.#conn?.unwatch();
  }

  /** Drops the current connection after a failure (its bytes stay counted). */
  dropChannel(): void {
    if (!this.#conn) return; // dropped already (a resume that could not connect)
    this.#bytesBefore += this.#writer?.bytesWritten ?? 0;
    this.#writer?.shutdown();
    this.#conn.close();
    this.#conn = null;
  }

  /** Counts the bytes of earlier data paths (a data path that takes over a paused postcopy). */
  carryBytes(bytes: number): void {
    this.#bytesBefore = bytes;
  }

  /** Bytes sent over every channel of this migration, across resumes. */
  transferred(): number {
    return this.#bytesBefore + (this.#writer?.bytesWritten ?? 0) + (this.#mfd?.bytes ?? 0);
  }

  /** Auto-converge's vCPU throttle back to 0 (and the counter that reports it). */
  liftThrottle(): void {
    this.vcpu.throttle = 0;
    this.ctx.stats[STAT.throttle] = 0;
  }

  /**
   * Beyond QEMU: ends a cancelled stream with CANCEL when the writer stands at a frame
   * boundary (Cancelled comes from the run's own checks), so the destination reports a
   * cancel, not a truncated stream. Bounded by the grace the cancel gives the writer.
   */
  async endCancelled(): Promise<void> {
    const writer = this.#writer;
    const sender = this.#sender;
    if (!this.streamStarted || !sender || !writer || writer.error) return;
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      await Promise.race([
        (async () => {
          await sender.append(encodeCancel());
          await sender.flush();
        })(),
        new Promise<void>((r) => timer = setTimeout(r, CANCEL_GRACE_MS)),
      ]);
    } catch {
      /* the channel broke meanwhile: the destination sees the end of the stream */
    } finally {
      clearTimeout(timer);
    }
  }

  /** Shuts the writer down at once (a failure: nothing more goes out). */
  shutdown(): void {
    this.#writer?.shutdown();
  }

  /** Ends the session: page channels, encoder, throttle, total-time, the connection. */
  close(): void {
    const stats = this.ctx.stats;
    this.#mfd?.terminate();
    for (const section of this.sections) section.cleanup();
    this.liftThrottle();
    stats[STAT.totalTime] ||= Date.now() - stats[STAT.startTime];
    this.#conn?.close();
    this.ctx.onWriter(null);
  }
}
