/**
 * The destination's page channels once claimed: each is read concurrently in the incoming
 * Worker (runs straight into guest RAM), and each MULTIFD_SYNC(pass) is a barrier: neither
 * a channel nor the main stream goes past pass N until every channel has reached it, so no
 * stale page overtakes a newer one.
 *
 * @module
 */
import { FrameType } from "../wire/frames.ts";
import { decodeU32 } from "../wire/postcopy.ts";
import { WireError } from "../wire/wire_error.ts";
import type { PageChannel } from "./multifd_dest.ts";
import type { RamLoader } from "./ram_loader.ts";
import { Signal } from "./signal.ts";
import { STAT } from "./stats.ts";

/** Reads one incoming migration's page channels (see the module doc). */
export class MultifdReceiver {
  readonly #channels: readonly PageChannel[];
  readonly #ram: RamLoader;
  readonly #stats: Float64Array;
  /** Per channel, the last pass whose MULTIFD_SYNC it reached. */
  readonly #reached: number[];
  #ended = 0;
  #error: Error | null = null;
  readonly #readers: Promise<void>[];
  readonly #barrier = new Signal();

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

  /** Waits until every page channel has reached MULTIFD_SYNC(pass). */
  async awaitBarrier(pass: number): Promise<void> {
    while (this.#reached.some((r) => r < pass)) {
      if (this.#error) throw this.#error;
      if (this.#ended > 0) throw new WireError("multifd: a channel ended before the pass did");
      await this.#barrier.wait(1000);
    }
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
        await this.#ram.pageRun(c.reader, f.length, header);
      } else if (f.type === FrameType.ZERO_RUN) {
        this.#ram.zeroRun(await c.reader.readPayload());
      } else if (f.type === FrameType.MULTIFD_SYNC) {
        this.#reached[c.id] = decodeU32(await c.reader.readPayload());
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
