/**
 * The destination's page channels once claimed: each is read concurrently in the incoming
 * Worker (runs straight into guest RAM), and each MULTIFD_SYNC(pass) is a barrier: neither
 * a channel nor the main stream goes past pass N until every channel has reached it, so no
 * stale page overtakes a newer one. Passes come in order (each sync is for the pass after the
 * last), and the main stream waits at a barrier only while the channels behind make progress
 * (a link timeout without any is a dead peer).
 *
 * @module
 */
import { FrameType } from "../wire/frames.ts";
import { decodeU32 } from "../wire/postcopy.ts";
import { WireError } from "../wire/wire_error.ts";
import type { MultifdRegistry, PageChannel } from "./multifd_dest.ts";
import type { LinkWatch } from "./link_watch.ts";
import { decodeSetup } from "../wire/multifd.ts";
import type { RamLoader } from "./ram_loader.ts";
import { Signal } from "./signal.ts";
import { STAT } from "./stats.ts";
import { LinkError } from "./failure.ts";

/** Reads one incoming migration's page channels (see the module doc). */
export class MultifdReceiver {
  readonly #channels: readonly PageChannel[];
  readonly #ram: RamLoader;
  readonly #stats: Float64Array;
  /** Per channel, the last pass whose MULTIFD_SYNC it reached. */
  readonly #reached: number[];
  #ended = 0;
  /** The last pass the main stream synced. */
  #mainPass = 0;
  #error: Error | null = null;
  readonly #readers: Promise<void>[];
  readonly #barrier = new Signal();

  /**
   * MULTIFD_SETUP (`payload`): claims the page channels it announces from `ctx.multifd`
   * (refused without one), guards each with `watch`, and starts reading them into `ram`.
   */
  static async claim(
    ctx: { multifd?: MultifdRegistry; stats: Float64Array },
    payload: Uint8Array,
    watch: LinkWatch,
    ram: RamLoader,
    onError: () => void,
  ): Promise<MultifdReceiver> {
    if (!ctx.multifd) throw new WireError("migration stream: unexpected multifd setup");
    const setup = decodeSetup(payload);
    const channels = await ctx.multifd.claim(setup.uuid, setup.channels);
    for (const c of channels) c.channel = watch.guard(c.channel);
    return new MultifdReceiver(channels, ram, ctx.stats, onError);
  }

  /**
   * Starts reading `channels` into `ram`; `onError` runs once a channel fails (the caller
   * closes its main stream so that its reader stops too).
   */
  constructor(
    channels: readonly PageChannel[],
    ram: RamLoader,
    stats: Float64Array,
    onError: () => void,
  ) {
    this.#channels = channels;
    this.#ram = ram;
    this.#stats = stats;
    this.#reached = channels.map(() => 0);
    this.#readers = channels.map((c) =>
      this.#read(c).catch((e) => {
        this.#error ??= e instanceof Error ? e : new Error(String(e));
        onError();
        this.#barrier.notify();
      })
    );
  }

  /**
   * The main stream's MULTIFD_SYNC(pass): waits until every page channel has reached it,
   * failing after `timeoutMs` in which none of the channels behind received a byte.
   */
  async mainSync(pass: number, timeoutMs: number): Promise<void> {
    if (pass !== this.#mainPass + 1) {
      throw new WireError(`multifd: sync for pass ${pass} after pass ${this.#mainPass}`);
    }
    this.#mainPass = pass;
    let progress = -1;
    let since = Date.now();
    for (;;) {
      const behind = this.#channels.filter((c) => this.#reached[c.id] < pass);
      if (behind.length === 0) return;
      const bytes = behind.reduce((n, c) => n + c.reader.bytesRead, 0);
      if (bytes !== progress) {
        progress = bytes;
        since = Date.now();
      } else if (Date.now() - since > timeoutMs) {
        throw new LinkError(
          "timeout",
          `multifd: channel ${
            behind[0].id
          } did not reach pass ${pass} (nothing received for ${+(timeoutMs / 1000).toFixed(1)} s)`,
        );
      }
      await this.#wait(Math.min(1000, timeoutMs));
    }
  }

  /** Waits until every page channel has reached MULTIFD_SYNC(pass). */
  async awaitBarrier(pass: number): Promise<void> {
    while (this.#reached.some((r) => r < pass)) await this.#wait(1000);
  }

  async #wait(ms: number): Promise<void> {
    if (this.#error) throw this.#error;
    if (this.#ended > 0) throw new WireError("multifd: a channel ended before the pass did");
    await this.#barrier.wait(ms);
  }

  /** After the main stream's EOF: every channel must end cleanly too. */
  async finish(): Promise<void> {
    await Promise.all(this.#readers);
    if (this.#error) throw this.#error;
    if (this.#ended !== this.#channels.length) {
      throw new WireError("multifd: the main stream ended before its page channels");
    }
  }

  /** Closes every page channel. */
  close(): void {
    for (const c of this.#channels) c.channel.close();
  }

  async #read(c: PageChannel): Promise<void> {
    const header = new Uint8Array(10);
    for (;;) {
      const f = await c.reader.next();
      if (f.type === FrameType.PAGE_RUN) {
        await this.#ram.pageRun(c.reader, f.length, header, true);
      } else if (f.type === FrameType.ZERO_RUN) {
        this.#ram.zeroRun(await c.reader.readPayload(), true);
      } else if (f.type === FrameType.RAM_USED) {
        // Each channel says a growable block's size before its first page past the old end.
        this.#ram.ramUsed(await c.reader.readPayload());
      } else if (f.type === FrameType.MULTIFD_SYNC) {
        const pass = decodeU32(await c.reader.readPayload());
        if (pass !== this.#reached[c.id] + 1) {
          throw new WireError(
            `multifd channel ${c.id}: sync for pass ${pass} after pass ${this.#reached[c.id]}`,
          );
        }
        this.#reached[c.id] = pass;
        this.#barrier.notify();
        await this.awaitBarrier(this.#reached[c.id]);
      } else if (f.type === FrameType.EOF) {
        this.#ended++;
        this.#barrier.notify();
        return;
      } else {
        throw new WireError(
          `multifd channel ${c.id}: unexpected frame type 0x${f.type.toString(16)}`,
        );
      }
      this.#stats[STAT.multifdBytes] = this.#channels.reduce(
        (n, x) => n + x.reader.bytesRead,
        0,
      );
    }
  }
}
