/**
 * The incoming migration, as the seed's process_incoming_migration_co and the postcopy
 * listen thread: read the stream, validate every frame against the local layout before it
 * touches guest memory, load pages and device state, and only then run (or pause) the
 * guest. In postcopy the guest runs at once; a vCPU touching a missing page blocks and the
 * page is requested over the return path; a page is placed whole, and never over one the
 * guest already has. A broken link in postcopy pauses until a recovery channel arrives.
 * A failed load leaves the guest in `inmigrate`, never running. Where the loader stands is an
 * explicit state (dest_stream_state.ts): a frame out of order is refused naming it. What a
 * section record carries goes to that section's loader by section id (section_table.ts: RAM,
 * the device state); where pages go is the RAM loader's placement (straight to RAM, then
 * postcopy's). After COLO_ENABLE the secondary's side (dest_colo.ts) runs past EOF.
 *
 * @module
 */
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { Channel } from "../ports.ts";
import type { MigrationStatus } from "../state_machine.ts";
import {
  checkConfig,
  decodeConfig,
  decodeGlobalState,
  decodeSectionEnd,
  decodeSectionFull,
  decodeSectionStart,
  FrameReader,
  FrameType,
  MAX_PACKAGE,
  MAX_SECTION_FULL,
  WireError,
} from "../wire/mod.ts";
import { decodeU32, splitPackage } from "../wire/postcopy.ts";
import { encodeRpPong, encodeRpShut } from "../wire/return_path.ts";
import { STAT } from "./stats.ts";
import { MultifdReceiver } from "./multifd_receiver.ts";
import { activateOnArrival } from "../block_activation.ts";
import { checkedRunstate, ReturnPath, runstateAfter } from "./dest_support.ts";
import { listen, pauseAndRecover } from "./dest_postcopy.ts";
import type { DestinationContext } from "./dest_context.ts";
import { failureKind } from "./failure.ts";
import { RamLoader } from "./ram_loader.ts";
import { SourceCancelled, tellSource } from "./peer_reason.ts";
import { DEFAULT_LINK_TIMEOUT_MS, LinkWatch } from "./link_watch.ts";
import { StreamStates } from "./dest_stream_state.ts";
import { DeviceSectionLoader } from "./device_section.ts";
import { DiskSectionLoader } from "./disk_section_loader.ts";
import { RamSectionLoader } from "./ram_section_loader.ts";
import { SECTION_DATA, SectionTable } from "./section_table.ts";
import { type DestColo, enableSecondary } from "./dest_colo.ts";
import { completeLoad } from "./dest_complete.ts";

/** One incoming migration. */
class DestinationRun {
  readonly #ctx: DestinationContext;
  readonly #vcpu: VcpuControl;
  /** Where pages land; its `postcopy` flag is set at POSTCOPY_LISTEN. */
  readonly #ram: RamLoader;
  #rp: ReturnPath | null = null;
  #channel: Channel | null = null;
  /** Where the loader stands in the current stream (a recovery's starts afresh). */
  readonly #stream = new StreamStates();
  #globalState: string | null = null;
  /** The sections this agent loads, by id: RAM, the drives and the device state. */
  readonly #sections: SectionTable;
  /** A SECTION_FULL read from the main stream (allocated at the first, at most 64 KiB + 264). */
  #fullBuf: Uint8Array | null = null;
  /** POSTCOPY_RUN happened: the guest runs here. */
  #ran = false;
  #faults: Promise<void> | null = null;
  /** Resolves when the run is done: wakes the fault loop at once. */
  readonly #ended = Promise.withResolvers<null>();
  #done = false;
  /** The multifd page channels, once MULTIFD_SETUP claimed them. */
  #mfd: MultifdReceiver | null = null;
  #mainReader: FrameReader | null = null;
  readonly #start = Date.now();
  /** Watches the current stream's channels for a dead source (a new one per recovery). */
  #watch: LinkWatch | null = null;
  readonly #ramSection: RamSectionLoader;
  /** setup → active, asked as the run starts and answered while it loads (run()). */
  #activation: Promise<boolean> = Promise.resolve(true);
  /** COLO_ENABLE came (and x-colo is on here): the secondary's side after EOF. */
  #colo: DestColo | null = null;

  constructor(ctx: DestinationContext) {
    this.#ctx = ctx;
    const { guest } = ctx;
    this.#vcpu = new VcpuControl(guest);
    this.#ram = new RamLoader(guest, ctx.stats);
    this.#ramSection = new RamSectionLoader(this.#ram, ctx.stats, ctx.decompressThreads ?? 2);
    this.#sections = new SectionTable([
      this.#ramSection,
      new DiskSectionLoader(guest.drives ?? []),
      new DeviceSectionLoader(this.#vcpu),
    ]);
  }

  get #status(): MigrationStatus {
    return this.#ctx.link.status;
  }

  async run(channel: Channel, opened?: FrameReader, refused?: Error): Promise<boolean> {
    const { stats, link } = this.#ctx;
    stats.fill(0);
    stats[STAT.startTime] = this.#start;
    stats[STAT.total] = this.#ram.totalPages * this.#ctx.guest.pageSize;
    try {
      // The stream is read while the main thread makes the status active: its answer takes a
      // message each way (~2 ms here) that the source's first pages would otherwise wait out.
      // The completion and postcopy ask for their transitions from `active` after this one;
      // a failure awaits its answer before it reads the status (below).
      this.#activation = link.transition("setup", "active");
      if (refused) throw refused; // not a migration stream at all
      let reader = await this.#begin(channel, opened);
      for (;;) {
        try {
          await this.#load(reader);
          break;
        } catch (e) {
          // Pause only once the guest runs here: before RUN the source still has it.
          if (this.#status !== "postcopy-active" || !this.#ran || failureKind(e) !== "link") {
            throw e;
          }
          reader = await this.#pauseAndRecover(e);
        }
      }
      if (!await this.#activation) throw new WireError("incoming migration was stopped");
      await this.#complete();
      await this.#rp?.send(encodeRpShut(0));
      await this.#colo?.run(); // x-colo: the secondary runs on the same connection
      return true;
    } catch (thrown) {
      // A failed page channel closed the main stream: its reason is the run's.
      const e = this.#mfd?.error ?? thrown;
      const message = e instanceof Error ? e.message : String(e);
      link.post({ t: "error", message: `load of migration failed: ${message}` });
      // The guest stops here before the source hears of the failure: a SHUT with an error
      // tells the source that this side does not run the guest (it may run it again).
      if (this.#ran) this.#vcpu.setRunstate("paused");
      await tellSource(e, message, this.#rp, this.#ctx.twoWay ?? false, this.#channel ?? channel);
      await this.#activation;
      const status = this.#status;
      if (status !== "failed" && status !== "completed") await link.transition(status, "failed");
      return false;
    } finally {
      this.#watch?.stop();
      this.#done = true;
      this.#ended.resolve(null);
      this.#vcpu.setPostcopy(false);
      stats[STAT.totalTime] = Date.now() - this.#start;
      this.#ctx.onChannel(null);
      this.#sections.cleanup();
      this.#rp?.channel.close();
      channel.close();
      if (this.#mfd) {
        this.#mfd.close();
        this.#ctx.multifd?.release();
      }
    }
  }

  /** A new watch over `channel` (the main stream or a recovery's); returns it guarded. */
  #watchLink(channel: Channel): Channel {
    this.#watch?.stop();
    this.#watch = new LinkWatch({
      timeoutMs: this.#ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
      idleReads: true,
    });
    return this.#watch.guard(channel);
  }

  async #begin(accepted: Channel, opened?: FrameReader): Promise<FrameReader> {
    const channel = this.#watchLink(accepted);
    this.#channel = channel;
    this.#ctx.onChannel(channel);
    const reader = opened ?? new FrameReader(channel);
    // Precopy pages may come in batches (see Channel.readCoalesceUs) until postcopy or
    // page channels need this Worker to answer at once.
    reader.coalesceUs = channel.readCoalesceUs ?? 0;
    this.#mainReader = reader;
    if (!opened) await reader.readStreamHeader();
    this.#stream.headerRead();
    const frame = await reader.next();
    this.#stream.accept(frame.type); // CONFIG first (or CANCEL)
    if (frame.type === FrameType.CANCEL) throw new SourceCancelled();
    const { guest } = this.#ctx;
    checkConfig(guest.layout, guest.pageSize, decodeConfig(await reader.readPayload()));
    return reader;
  }

  /** Reads frames up to EOF. */
  async #load(reader: FrameReader): Promise<void> {
    const { stats } = this.#ctx;
    for (;;) {
      const frame = await reader.next();
      this.#stream.accept(frame.type);
      if (frame.type === FrameType.EOF) {
        await this.#sections.settle();
        return;
      }
      if (frame.type === FrameType.CANCEL) throw new SourceCancelled();
      if (SECTION_DATA.has(frame.type)) {
        // RAM (or a later live section's data) only inside an open record: its loader reads it.
        this.#stream.requireSection();
        await this.#sections.open.loadState(frame.type, frame.length, reader);
      } else if (frame.type === FrameType.PACKAGED) await this.#package(reader, frame.length);
      else if (frame.type === FrameType.SECTION_FULL) {
        // Up to 64 KiB of body behind a name: read whole into one buffer of fixed size.
        this.#fullBuf ??= new Uint8Array(MAX_SECTION_FULL);
        const payload = this.#fullBuf.subarray(0, frame.length);
        await reader.readInto(payload);
        await this.#command(frame.type, payload);
      } else await this.#command(frame.type, await reader.readPayload());
      stats[STAT.transferred] = reader.bytesRead;
    }
  }

  /** Reads a PACKAGED frame whole, then runs its frames (listen, state, run). */
  async #package(reader: FrameReader, length: number): Promise<void> {
    if (length > MAX_PACKAGE) throw new WireError("package too large");
    const pkg = new Uint8Array(length);
    await reader.readInto(pkg);
    for (const f of splitPackage(pkg)) {
      this.#stream.accept(f.type); // listen, the state, run: nothing else
      await this.#command(f.type, f.payload);
    }
    this.#stream.packageEnded();
  }

  /** Every frame but a live section's data, PACKAGED and EOF. */
  async #command(type: number, payload: Uint8Array): Promise<void> {
    const { guest } = this.#ctx;
    // A record boundary or state: every page a section holds back must be in place.
    await this.#sections.settle();
    switch (type) {
      case FrameType.SECTION_START: {
        const rec = decodeSectionStart(payload);
        this.#stream.sectionStart(rec);
        this.#sections.start(rec);
        break;
      }
      case FrameType.SECTION_END: {
        const rec = decodeSectionEnd(payload);
        this.#stream.sectionEnd(rec);
        this.#sections.end(rec);
        break;
      }
      case FrameType.GLOBAL_STATE:
        this.#globalState = checkedRunstate(decodeGlobalState(payload));
        break;
      case FrameType.SECTION_FULL:
        this.#stream.requireNoSection("a whole section (SECTION_FULL)");
        this.#sections.full(decodeSectionFull(payload));
        break;
      case FrameType.OPEN_RETURN_PATH:
        this.#rp = new ReturnPath(this.#channel!);
        break;
      case FrameType.PING:
        await this.#rp?.send(encodeRpPong(decodeU32(payload)));
        break;
      case FrameType.POSTCOPY_ADVISE:
        if (decodeU32(payload) !== guest.pageSize) {
          throw new WireError("Postcopy is not supported: page sizes differ");
        }
        this.#ram.advised = true;
        this.#mfd?.advise();
        break;
      case FrameType.COLO_ENABLE:
        this.#colo = enableSecondary(this.#ctx.colo, {
          ...this.#ctx,
          vcpu: this.#vcpu,
          reader: this.#mainReader,
          channel: this.#channel,
          rp: this.#rp,
          ram: this.#ram,
          ramSection: this.#ramSection,
          sections: this.#sections,
          timeoutMs: this.#ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
          unwatch: () => this.#watch?.stop(),
        });
        break;
      case FrameType.POSTCOPY_DISCARD:
        this.#ram.discard(payload);
        break;
      case FrameType.POSTCOPY_LISTEN:
        if (this.#mainReader) this.#mainReader.coalesceUs = 0; // faults must be answered now
        ({ faults: this.#faults } = await listen(this.#ctx.link, {
          guest,
          vcpu: this.#vcpu,
          ram: this.#ram,
          rp: () => this.#rp,
          done: () => this.#done,
          ended: this.#ended.promise,
        }));
        break;
      case FrameType.MULTIFD_SETUP: {
        if (this.#mfd) throw new WireError("migration stream: unexpected multifd setup");
        if (this.#mainReader) this.#mainReader.coalesceUs = 0; // page channels share this Worker
        this.#mfd = await MultifdReceiver.claim(this.#ctx, payload, this.#watch!, this.#ram, () => {
          this.#channel?.close(); // a failed page channel stops the main stream's reader too
        });
        break;
      }
      case FrameType.MULTIFD_SYNC:
        if (!this.#mfd) throw new WireError("migration stream: multifd sync without multifd");
        await this.#mfd.mainSync(
          decodeU32(payload),
          this.#ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
        );
        break;
      case FrameType.POSTCOPY_RUN:
        if (!this.#ram.postcopy || this.#sections.missingFull().length > 0) {
          throw new WireError("migration stream: postcopy run before listen and device state");
        }
        // With the arrival digest, from here each page's first write is copied aside, so the
        // guest "as it arrived" can be measured once every page is in.
        if (this.#ctx.arrivalDigest) this.#vcpu.beginSnapshot();
        this.#ran = true;
        this.#vcpu.setRunstate(
          activateOnArrival(this.#ctx.guest, runstateAfter(this.#globalState, this.#ctx.autostart)),
        );
        break;
      default:
        throw new WireError(`migration stream: unexpected frame type 0x${type.toString(16)}`);
    }
  }

  /** After EOF: everything must be here; then run (precopy) and report completed. */
  #complete(): Promise<void> {
    return completeLoad({
      ctx: this.#ctx,
      stream: this.#stream,
      sections: this.#sections,
      ram: this.#ram,
      vcpu: this.#vcpu,
      mfd: this.#mfd,
      colo: this.#colo,
      faults: this.#faults,
      globalState: this.#globalState,
      start: this.#start,
      end: () => {
        this.#done = true;
        this.#ended.resolve(null);
      },
      ran: () => {
        this.#ran = true;
      },
    });
  }

  /** postcopy-paused until migrate-recover brings a channel; then the recovery handshake. */
  #pauseAndRecover(why: unknown): Promise<FrameReader> {
    return pauseAndRecover(why, {
      link: this.#ctx.link,
      guest: this.#ctx.guest,
      ram: this.#ram,
      stream: this.#stream,
      awaitRecovery: () => this.#ctx.awaitRecovery(),
      drop: () => {
        // Paused: nothing is expected from the source until a recovery channel comes.
        this.#watch?.stop();
        this.#channel?.close();
      },
      paused: () => {
        if (this.#rp) this.#rp.broken = true;
      },
      adopt: (accepted) => {
        this.#sections.newStream();
        const channel = this.#watchLink(accepted);
        this.#channel = channel;
        this.#ctx.onChannel(channel);
        this.#rp = new ReturnPath(channel);
        return { channel, rp: this.#rp };
      },
    });
  }
}

export type { DestinationContext };

/** Loads one incoming stream from `channel`; resolves true when completed. Never throws. */
export function runDestination(
  ctx: DestinationContext,
  channel: Channel,
  opened?: FrameReader,
  refused?: Error,
): Promise<boolean> {
  return new DestinationRun(ctx).run(channel, opened, refused);
}
