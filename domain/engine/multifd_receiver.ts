/**
 * The destination's page channels once claimed. Each is read into guest RAM by a receive
 * thread of its own (a channel redirected there, multifd_rx_pool.ts) or here in the incoming
 * Worker, concurrently with the main stream; wherever it is read, it reports to shared cells
 * (multifd_rx_shared.ts), and each MULTIFD_SYNC(pass) is a barrier: neither a channel nor the
 * main stream goes past pass N until every channel has reached it, so no stale page overtakes
 * a newer one. Passes come in order (each sync is for the pass after the last), and the main
 * stream waits at a barrier only while the channels behind make progress (a link timeout
 * without any is a dead peer).
 *
 * @module
 */
import { decodeSetup } from "../wire/multifd.ts";
import { WireError } from "../wire/wire_error.ts";
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { MultifdRegistry, PageChannel } from "./multifd_dest.ts";
import type { LinkWatch } from "./link_watch.ts";
import type { RamLoader } from "./ram_loader.ts";
import { readPageChannel } from "./multifd_channel_reader.ts";
import { RemoteChannel } from "./multifd_rx_pool.ts";
import {
  chCell,
  chStat,
  createRxShared,
  passState,
  RX,
  RX_CH,
  RX_STAT,
  type RxShared,
  rxState,
  setCell,
  sumRx,
  waitEpoch,
  wake,
} from "./multifd_rx_shared.ts";
import { STAT } from "./stats.ts";
import { type FailureKind, LinkError, TypedFailure } from "./failure.ts";

/** How long a failed channel's reason may take to arrive after its failed mark (ms). */
const REASON_WAIT_MS = 1000;

/** Reads one incoming migration's page channels (see the module doc). */
export class MultifdReceiver {
  readonly #channels: readonly PageChannel[];
  readonly #shared: RxShared;
  readonly #ctl: Int32Array;
  readonly #rx: Float64Array;
  readonly #stats: Float64Array;
  readonly #onError: () => void;
  /** Page counts of receive threads already added to the run's counters. */
  readonly #added = { normal: 0, duplicate: 0 };
  #error: Error | null = null;
  /** The last pass the main stream synced. */
  #mainPass = 0;
  readonly #readers: Promise<void>[] = [];

  /**
   * MULTIFD_SETUP (`payload`): claims the page channels it announces from `ctx.multifd`
   * (refused without one), guards each read here with `watch`, and starts reading them into
   * `ram` (here, or in their receive threads).
   */
  static async claim(
    ctx: { multifd?: MultifdRegistry; stats: Float64Array; guest: SharedGuest },
    payload: Uint8Array,
    watch: LinkWatch,
    ram: RamLoader,
    onError: () => void,
  ): Promise<MultifdReceiver> {
    if (!ctx.multifd) throw new WireError("migration stream: unexpected multifd setup");
    const setup = decodeSetup(payload);
    const channels = await ctx.multifd.claim(setup.uuid, setup.channels);
    for (const c of channels) if (c.reader) c.channel = watch.guard(c.channel);
    return new MultifdReceiver(channels, ram, ctx.stats, onError, ctx.guest);
  }

  /**
   * Starts reading `channels` into `ram` (`guest`'s: receive threads need it); `onError` runs
   * once a channel fails (the caller closes its main stream so that its reader stops too).
   */
  constructor(
    channels: readonly PageChannel[],
    ram: RamLoader,
    stats: Float64Array,
    onError: () => void,
    guest?: SharedGuest,
  ) {
    this.#channels = channels;
    this.#stats = stats;
    this.#onError = onError;
    this.#shared = createRxShared(channels.length, ram.seenMap);
    this.#ctl = new Int32Array(this.#shared.ctl);
    this.#rx = new Float64Array(this.#shared.stats);
    if (ram.advised) this.advise();
    const cells = { ctl: this.#ctl, stats: this.#rx, channels: channels.length };
    for (const c of channels) {
      if (c.channel instanceof RemoteChannel) {
        if (!guest) throw new Error("a receive thread's channel needs the guest");
        const { thread, conn } = c.channel;
        thread.failures.set(conn, (kind, message) => {
          this.#fail(new TypedFailure(kind as FailureKind, message));
        });
        thread.post({ t: "load", conn, id: c.id, guest, shared: this.#shared });
      } else if (c.reader) {
        this.#readers.push(
          readPageChannel(c.id, c.reader, ram, cells).catch((e) => {
            setCell(this.#ctl, chCell(c.id, RX_CH.FAILED), 1);
            this.#fail(e instanceof Error ? e : new Error(String(e)));
          }),
        );
      }
    }
  }

  /** The first page channel's failure, if any (the run's reason when it stopped the main stream). */
  get error(): Error | null {
    return this.#error;
  }

  /** POSTCOPY_ADVISE: pages the receive threads place are received for the vCPU too. */
  advise(): void {
    setCell(this.#ctl, RX.ADVISED, 1);
  }

  #fail(e: Error): void {
    if (this.#error) return;
    this.#error = e;
    this.#onError();
    wake(this.#ctl);
  }

  /**
   * The main stream's MULTIFD_SYNC(pass): waits until every page channel has reached it,
   * failing after `timeoutMs` in which none of the channels received a byte.
   */
  async mainSync(pass: number, timeoutMs: number): Promise<void> {
    if (pass !== this.#mainPass + 1) {
      throw new WireError(`multifd: sync for pass ${pass} after pass ${this.#mainPass}`);
    }
    this.#mainPass = pass;
    let progress = -1;
    let since = Date.now();
    for (;;) {
      const epoch = Atomics.load(this.#ctl, RX.EPOCH);
      await this.#check();
      const s = passState(this.#ctl, this.#channels.length, pass);
      if (s.state === "reached") {
        this.#publish();
        return;
      }
      if (s.state === "ended-early") {
        throw new WireError("multifd: a channel ended before the pass did");
      }
      const bytes = this.#publish();
      if (bytes !== progress) {
        progress = bytes;
        since = Date.now();
      } else if (Date.now() - since > timeoutMs) {
        throw new LinkError(
          "timeout",
          `multifd: channel ${s.behind} did not reach pass ${pass} (nothing received for ${+(
            timeoutMs / 1000
          ).toFixed(1)} s)`,
        );
      }
      await waitEpoch(this.#ctl, epoch, Math.min(1000, timeoutMs));
    }
  }

  /**
   * Throws the first channel error. A receive thread marks its channel failed at once and
   * says why in a message, which this Worker reads only between tasks: when the mark is there
   * and the reason not yet, wait (bounded) for the reason, so the failure keeps its kind.
   */
  async #check(): Promise<{ failed: number; ended: number }> {
    let s = rxState(this.#ctl, this.#channels.length);
    const end = Date.now() + REASON_WAIT_MS;
    while (!this.#error && s.failed > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
      s = rxState(this.#ctl, this.#channels.length);
    }
    if (this.#error) throw this.#error;
    if (s.failed > 0) throw new WireError("multifd: a page channel failed");
    return s;
  }

  /** Copies the channels' counters into the run's; returns the bytes received on them. */
  #publish(): number {
    const n = this.#channels.length;
    const bytes = sumRx(this.#rx, n, RX_STAT.BYTES);
    this.#stats[STAT.multifdBytes] = bytes;
    let normal = 0, duplicate = 0;
    for (const c of this.#channels) {
      if (!(c.channel instanceof RemoteChannel)) continue; // counted by the run's loader
      normal += this.#rx[chStat(c.id, RX_STAT.NORMAL)];
      duplicate += this.#rx[chStat(c.id, RX_STAT.DUPLICATE)];
    }
    this.#stats[STAT.normal] += normal - this.#added.normal;
    this.#stats[STAT.duplicate] += duplicate - this.#added.duplicate;
    this.#added.normal = normal;
    this.#added.duplicate = duplicate;
    return bytes;
  }

  /** After the main stream's EOF (or before postcopy listens): every channel ends cleanly. */
  async finish(): Promise<void> {
    for (;;) {
      const epoch = Atomics.load(this.#ctl, RX.EPOCH);
      const s = await this.#check();
      if (s.ended === this.#channels.length) break;
      await waitEpoch(this.#ctl, epoch, 1000);
    }
    await Promise.all(this.#readers);
    this.#publish();
  }

  /** Closes every page channel (the receive threads stop reading theirs). */
  close(): void {
    setCell(this.#ctl, RX.ABORT, 1);
    for (const c of this.#channels) c.channel.close();
  }
}
