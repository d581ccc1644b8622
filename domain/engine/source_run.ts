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
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { Channel } from "../ports.ts";
import type { MigrationStatus } from "../state_machine.ts";
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
import { encodeEmpty, encodeU32Frame } from "../wire/postcopy.ts";
import { STAT } from "./stats.ts";
import { SourceCounters } from "./source_counters.ts";
import type { LiveParams } from "./messages.ts";
import type { MainLink } from "./main_link.ts";
import { bitmapBytes, PageSender } from "./page_sender.ts";
import { PageEncoder } from "./page_encoder.ts";
import { createMultifdShared } from "./multifd_shared.ts";
import { MultifdSource } from "./multifd_source.ts";
import { encodeSetup } from "../wire/multifd.ts";
import { SourceReturnPath } from "./source_return_path.ts";
import { type PostcopyRun, SourcePostcopy } from "./source_postcopy.ts";
import { Cancelled } from "./cancelled.ts";
import type { SourceControl } from "./source_control.ts";
import type { Capabilities } from "../options.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";

/** Pages sent between bookkeeping rounds in precopy (8 MiB). */
const CHUNK_PAGES = 2048;

/** Everything the run needs; `connect` opens a channel (so tests can pass a memory pair). */
export interface SourceContext {
  guest: SharedGuest;
  stats: Float64Array;
  link: MainLink;
  params: LiveParams;
  caps: Capabilities;
  control: SourceControl;
  /** The migration's URI (multifd channels connect to it too). */
  uri: string;
  /** TLS for every channel, with tls-creds. */
  tls?: TlsChannelOptions;
  /** Opens the migration's channel, or the one given on resume. */
  connect: (uri?: string) => Promise<Channel>;
  /** Called with the writer once it exists, so cancel can shut it down. */
  onWriter: (w: ChannelWriter | null) => void;
  /** Ports of page-channel Workers the main thread started (else they start here). */
  multifdPorts?: MessagePort[];
  /** Set by the run: reports a page-channel Worker that crashed. */
  onMultifdCrash?: (id: number, message: string) => void;
}

function section(kind: number, pass: number, end: boolean): Uint8Array {
  return encodeSection(end ? FrameType.SECTION_END : FrameType.SECTION_START, kind, pass);
}

/** One outgoing migration. */
class SourceRun {
  readonly #ctx: SourceContext;
  readonly #vcpu: VcpuControl;
  /** When this run began (setup-time counts from here, as from QEMU's migration thread). */
  readonly #start = Date.now();
  #channel: Channel | null = null;
  #writer: ChannelWriter | null = null;
  #sender: PageSender | null = null;
  /** The page channels, with x-multifd. */
  #mfd: MultifdSource | null = null;
  #mfdBitmap: SharedArrayBuffer | null = null;
  /** What the destination said on the return path of the current channel. */
  readonly #rp = new SourceReturnPath();
  #vmWasRunning = false;
  readonly #counters: SourceCounters;

  constructor(ctx: SourceContext) {
    this.#ctx = ctx;
    this.#vcpu = new VcpuControl(ctx.guest);
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
      await this.#open();
      await this.#setup();
      const next = await this.#iterate();
      if (next === "postcopy") {
        this.#postcopy = new SourcePostcopy(this.#postcopyRun());
        await this.#postcopy.start();
        await this.#postcopy.loop();
        await this.#finish("postcopy-active");
      } else {
        const state = await this.#stopForCompletion();
        await this.#completePrecopy();
        await this.#finish(state);
      }
      this.#vcpu.setRunstate("postmigrate");
    } catch (e) {
      this.#writer?.shutdown();
      // migration_iteration_finish: the guest goes on where it was, unless it already
      // runs on the destination (postcopy after the package). Before the status says
      // failed, so that a client who sees `failed` finds the guest running.
      if (this.#vmWasRunning && !this.#postcopy?.live) this.#vcpu.setRunstate("running");
      else if (this.#vcpu.runstate === "finish-migrate") this.#vcpu.setRunstate("postmigrate");
      const status = this.#status;
      if (!(e instanceof Cancelled) && status !== "cancelling") {
        link.post({ t: "error", message: e instanceof Error ? e.message : String(e) });
        if (status !== "failed" && status !== "completed" && status !== "cancelled") {
          await link.transition(status, "failed");
        }
      }
    } finally {
      this.#mfd?.terminate();
      this.#sender?.encoder?.close();
      this.#vcpu.throttle = 0;
      stats[STAT.throttle] = 0;
      stats[STAT.totalTime] ||= Date.now() - stats[STAT.startTime];
      this.#channel?.close();
      this.#ctx.onWriter(null);
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
      stopVcpu: () => this.#stopVcpu(),
      maybePause: (from, to) => this.#maybePause(from, to),
      stateFrames: () => this.#stateFrames(),
      awaitShut: () => this.#awaitShut(),
      dropChannel: () => {
        this.#bytesBefore += this.#writer?.bytesWritten ?? 0;
        this.#writer?.shutdown();
        this.#channel?.close();
        this.#channel = null;
      },
      reopen: (uri) => this.#open(uri),
    };
  }

  async #open(uri?: string): Promise<void> {
    const channel = await this.#ctx.connect(uri);
    this.#channel = channel;
    this.#writer = new ChannelWriter(channel, { rateLimit: this.#ctx.params["max-bandwidth"] });
    this.#ctx.onWriter(this.#writer);
    if (this.#ctx.control.cancelled) throw new Cancelled();
    if (this.#sender) this.#sender.retarget(this.#writer);
    else {
      if (this.#ctx.caps["x-multifd"]) {
        const layout = this.#ctx.guest.layout;
        const last = layout[layout.length - 1];
        this.#mfdBitmap = new SharedArrayBuffer(bitmapBytes(last.firstPage + last.pages));
      }
      this.#sender = new PageSender(this.#ctx.guest, this.#writer, this.#mfdBitmap ?? undefined);
      const { caps, params } = this.#ctx;
      if (caps.xbzrle || caps.compress) {
        this.#sender.encoder = new PageEncoder({
          xbzrleCache: caps.xbzrle ? params["xbzrle-cache-size"] : undefined,
          hugePages: this.#ctx.guest.ramPageSize > this.#ctx.guest.pageSize,
          compress: caps.compress
            ? {
              threads: params["compress-threads"],
              level: params["compress-level"],
              waitThread: params["compress-wait-thread"],
            }
            : undefined,
        });
        this.#counters.encoder();
      }
    }
    if (this.#useReturnPath) {
      this.#rp.read(channel, this.#ctx.guest.layout, this.#ctx.guest.pageSize, {
        onBitmap: (block, bits) => this.#sender!.loadReceived(block, bits),
        onRequest: () => this.#ctx.stats[STAT.postcopyRequests]++,
        wake: () => this.#ctx.control.wake.notify(),
      });
    }
  }

  #checkErrors(): void {
    if (this.#ctx.control.cancelled || this.#status === "cancelling") throw new Cancelled();
    this.#rp.check();
    const werr = this.#writer?.error;
    if (werr) throw werr;
    if (this.#mfd?.error) throw new Error(this.#mfd.error);
  }

  async #setup(): Promise<void> {
    const { guest, stats, link } = this.#ctx;
    const sender = this.#sender!;
    stats[STAT.total] = sender.totalPages * guest.pageSize;
    await sender.append(encodeStreamHeader());
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
    const { guest, params, stats } = this.#ctx;
    const uuid = crypto.getRandomValues(new Uint8Array(16));
    const channels = params["x-multifd-channels"];
    const pageCount = params["x-multifd-page-count"];
    await this.#sender!.append(encodeSetup(uuid, pageCount, channels));
    await this.#sender!.flush();
    this.#mfd = new MultifdSource(
      guest,
      this.#ctx.uri,
      createMultifdSharedWith(this.#mfdBitmap!, channels),
      {
        channels,
        pageCount,
        uuid,
        rateLimit: params["max-bandwidth"],
        tls: this.#ctx.tls,
        ports: this.#ctx.multifdPorts,
      },
    );
    const mfd = this.#mfd;
    this.#ctx.onMultifdCrash = (id, message) => mfd.crashed(id, message);
    await this.#mfd.ready();
    stats[STAT.multifdBytes] = this.#mfd.bytes;
  }

  /** One pass over the page channels, then MULTIFD_SYNC on the main stream too. */
  async #multifdPass(): Promise<void> {
    const gen = await this.#mfd!.pass(() => {
      this.#counters.update(Date.now());
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
      if (control.paramsChanged) {
        control.paramsChanged = false;
        this.#writer!.setRateLimit(this.#ctx.params["max-bandwidth"]);
        this.#mfd?.setRate(this.#ctx.params["max-bandwidth"]);
        this.#sender!.encoder?.resize(this.#ctx.params["xbzrle-cache-size"]);
      }
      if (this.#mfd) {
        await this.#multifdPass();
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

  /** Stops the vCPU (finish-migrate); returns when parked. */
  #stopVcpu(): void {
    this.#vmWasRunning = this.#vcpu.runstate === "running";
    this.#runstateBefore = this.#vcpu.runstate;
    this.#vcpu.setRunstate("finish-migrate");
    if (!this.#vcpu.waitParked(5000)) throw new Error("vCPU did not stop");
  }
  #runstateBefore = "running";

  /** migration_maybe_pause: pre-switchover until migrate-continue (or cancel). */
  async #maybePause(from: MigrationStatus, to: MigrationStatus): Promise<void> {
    const { link, control } = this.#ctx;
    if (!this.#ctx.caps["pause-before-switchover"]) return;
    control.continued = false;
    if (!await link.transition(from, "pre-switchover")) throw new Cancelled();
    while (!control.continued) {
      this.#checkErrors();
      await control.wake.wait(1000);
    }
    if (!await link.transition("pre-switchover", to)) throw new Cancelled();
  }

  /** Precopy completion, part 1: stop, maybe pause; returns the state completion runs in. */
  async #stopForCompletion(): Promise<MigrationStatus> {
    this.#downtimeStart = Date.now();
    this.#stopVcpu();
    if (this.#ctx.caps["pause-before-switchover"]) {
      await this.#maybePause("active", "device");
      return "device";
    }
    return "active";
  }
  #downtimeStart = 0;

  /** Precopy completion, part 2: the rest of RAM, the device state, EOF, and SHUT. */
  async #completePrecopy(): Promise<void> {
    const sender = this.#sender!;
    this.#writer!.setRateLimit(0);
    this.#mfd?.setRate(0);
    this.#counters.sync();
    await sender.append(section(SectionKind.COMPLETE, this.#counters.pass, false));
    if (this.#mfd) await this.#multifdPass();
    else while (!await sender.send(1 << 30));
    await sender.append(section(SectionKind.COMPLETE, this.#counters.pass, true));
    for (const f of this.#stateFrames()) await sender.append(f);
    await sender.append(encodeEof());
    await sender.flush();
    if (this.#mfd) {
      await this.#mfd.finish();
      this.#counters.update(Date.now());
    }
    await this.#awaitShut();
    await this.#channel!.closeWrite();
    this.#ctx.stats[STAT.downtime] = Date.now() - this.#downtimeStart;
  }

  /** GLOBAL_STATE (the runstate before the stop) and DEVICE (the vCPU's registers). */
  #stateFrames(): Uint8Array[] {
    return [
      encodeGlobalState(this.#vmWasRunning ? "running" : this.#runstateBefore),
      encodeDevice(this.#vcpu.saveDeviceState()),
    ];
  }

  /** With a return path, completed only after the destination's SHUT without error. */
  async #awaitShut(): Promise<void> {
    if (!this.#useReturnPath) return;
    while (this.#rp.shut === null) {
      this.#checkErrors();
      await this.#ctx.control.wake.wait(1000);
    }
    this.#checkErrors();
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
    if (!await link.transition(state, "completed")) throw new Cancelled();
  }
}

/** The shared multifd buffers around an existing migration bitmap. */
function createMultifdSharedWith(bitmap: SharedArrayBuffer, channels: number) {
  return { ...createMultifdShared(channels, 0), bitmap };
}

/** Runs one outgoing migration to its end; never throws. */
export async function runSource(ctx: SourceContext): Promise<void> {
  await new SourceRun(ctx).run();
}
