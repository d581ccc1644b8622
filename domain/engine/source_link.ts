/**
 * One connection of an outgoing migration (the main channel, or a page channel): connecting
 * within the link timeout, the channel guarded by a {@link LinkWatch} (a peer that stops
 * taking data is noticed), its counting writer, and the keepalive — a PING at least every
 * keepalive interval, which keeps the destination from taking a quiet source for a dead one
 * and, with a return path, must be answered (PONG) within the timeout.
 *
 * @module
 */
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { Channel } from "../ports.ts";
import { FrameType } from "../wire/frames.ts";
import { encodeU32Frame } from "../wire/postcopy.ts";
import { LinkError } from "./failure.ts";
import { type GuardedChannel, keepaliveInterval, LinkWatch } from "./link_watch.ts";

/** The value of a keepalive PING (the destination echoes it in its PONG). */
export const KEEPALIVE_PING = 0x4b454550; // "KEEP"

/** How a {@link SourceLink} is opened. */
export interface SourceLinkOptions {
  /** The link timeout (ms): connecting, a stuck write, an unanswered PING. */
  timeoutMs: number;
  /** max-bandwidth for the writer (0: unlimited). */
  rateLimit: number;
  /** The destination answers PINGs (a return path is open on this channel). */
  answers: boolean;
  /** Told when the link is given up (so that a waiting loop wakes). */
  onExpire?: (e: LinkError) => void;
}

/** Resolves to `connect()`'s channel, or fails with a LinkError after `ms`. */
export async function connectWithin(
  connect: () => Promise<Channel>,
  ms: number,
): Promise<Channel> {
  const opening = connect();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new LinkError("connect", `no connection within ${+(ms / 1000).toFixed(1)} s`)),
      ms,
    );
  });
  try {
    return await Promise.race([opening, late]);
  } catch (e) {
    opening.then((ch) => ch.close(), () => {}); // a connection that comes too late
    throw e;
  } finally {
    clearTimeout(timer);
  }
}

/** One outgoing connection (see the module doc). */
export class SourceLink {
  readonly channel: GuardedChannel;
  readonly writer: ChannelWriter;
  readonly #watch: LinkWatch;
  readonly #answers: boolean;
  readonly #every: number;
  #lastPing = performance.now();

  private constructor(channel: Channel, opts: SourceLinkOptions) {
    this.#watch = new LinkWatch({
      timeoutMs: opts.timeoutMs,
      idleReads: false,
      onExpire: opts.onExpire,
    });
    this.channel = this.#watch.guard(channel);
    this.writer = new ChannelWriter(this.channel, { rateLimit: opts.rateLimit });
    this.#answers = opts.answers;
    this.#every = keepaliveInterval(opts.timeoutMs);
  }

  /** Connects (within the timeout) and guards the channel. */
  static async open(connect: () => Promise<Channel>, opts: SourceLinkOptions): Promise<SourceLink> {
    return new SourceLink(await connectWithin(connect, opts.timeoutMs), opts);
  }

  /** The error the link was given up with, or null. */
  get error(): LinkError | null {
    return this.#watch.error;
  }

  /**
   * Sends a keepalive PING through `append`/`flush` (the channel's frame sender) when one is
   * due; call it between frames wherever the source may wait.
   */
  async keepalive(append: (frame: Uint8Array) => Promise<void>, flush: () => Promise<void>) {
    const now = performance.now();
    if (now - this.#lastPing < this.#every || this.writer.error) return;
    this.#lastPing = now;
    await append(encodeU32Frame(FrameType.PING, KEEPALIVE_PING));
    await flush();
    if (this.#answers) this.#watch.expectReply();
  }

  /** Something must arrive on the return path within the timeout (the SHUT after EOF). */
  expectReply(): void {
    this.#watch.expectReply();
  }

  /** Stops watching, leaving the channel open (COLO watches its peer itself). */
  unwatch(): void {
    this.#watch.stop();
  }

  /** Stops watching; closes the channel. */
  close(): void {
    this.#watch.stop();
    this.channel.close();
  }
}
