/**
 * Notices a dead peer: a peer that stopped (SIGSTOP, a hung host) or a link that drops every
 * packet keeps its sockets open, so reads and writes just wait. Every channel of a migration
 * goes through a {@link GuardedChannel} that records when its reads and writes last made
 * progress; a {@link LinkWatch} looks at them about four times per timeout and gives the link
 * up — closing every channel it watches, whose pending and later operations then fail with
 * the watch's {@link LinkError} — when
 *
 * - a write made no progress for the timeout (`stalled`: the peer stopped reading);
 * - with `idleReads` (the destination), a read waited for the timeout while nothing arrived
 *   on any of the migration's channels (`timeout`). The source sends a PING at least every
 *   keepalive interval, so a live source is never silent that long;
 * - a reply was asked for ({@link LinkWatch.expectReply}: the source sent a PING on a stream
 *   with a return path) and nothing arrived for the timeout (`timeout`).
 *
 * The defaults (30 s, a keepalive every 5 s) are libvirt's keepalive (interval 5 s, count 5).
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { LinkError } from "./failure.ts";

/**
 * The default clock: one function for every channel and watch, so that a data path compiled
 * for the warm-up's (domain/engine/warm_up.ts) still fits a migration's.
 */
function performanceNow(): number {
  return performance.now();
}

/** How long a peer may stay silent or stuck before the link is given up (ms). */
export const DEFAULT_LINK_TIMEOUT_MS = 30_000;
/** Fewest and most milliseconds a link timeout may be set to. */
export const LINK_TIMEOUT_RANGE = { min: 200, max: 3_600_000 } as const;

/** How often the source sends a keepalive PING for a link timeout of `timeoutMs`. */
export function keepaliveInterval(timeoutMs: number): number {
  return Math.max(20, Math.floor(timeoutMs / 6));
}

/** A channel whose progress a {@link LinkWatch} can see. */
export class GuardedChannel implements Channel {
  readonly inner: Channel;
  /** Reads and writes waiting now. */
  pendingReads = 0;
  pendingWrites = 0;
  /** When the oldest waiting read / write began, and when one last completed (ms). */
  readSince = 0;
  writeSince = 0;
  lastRead = 0;
  lastWrite = 0;
  #error: LinkError | null = null;
  #watch: LinkWatch | null = null;
  readonly #now: () => number;

  /** Guards `inner`; `now` is the clock (default `performance.now`). */
  constructor(inner: Channel, now: () => number = performanceNow) {
    this.inner = inner;
    this.#now = now;
  }

  /** Passed through (see Channel.readCoalesceUs). */
  get readCoalesceUs(): number | undefined {
    return this.inner.readCoalesceUs;
  }

  /** Reads, recording progress; fails with the watch's error once the link was given up. */
  async read(p: Uint8Array): Promise<number | null> {
    this.#check();
    if (this.pendingReads++ === 0) this.readSince = this.#now();
    let n: number | null;
    try {
      n = await this.inner.read(p);
    } catch (e) {
      throw this.#error ?? e;
    } finally {
      this.pendingReads--;
    }
    this.#check();
    this.lastRead = this.#now();
    this.#watch?.heard();
    return n;
  }

  /** Writes, recording progress; fails with the watch's error once the link was given up. */
  async write(p: Uint8Array): Promise<number> {
    this.#check();
    if (this.pendingWrites++ === 0) this.writeSince = this.#now();
    let n: number;
    try {
      n = await this.inner.write(p);
    } catch (e) {
      throw this.#error ?? e;
    } finally {
      this.pendingWrites--;
    }
    this.#check();
    this.lastWrite = this.#now();
    return n;
  }

  /** Passed through. */
  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }

  /** Closes the channel and stops watching it. */
  close(): void {
    this.#watch?.forget(this);
    this.inner.close();
  }

  /** Gives the link up: pending and later operations fail with `error`. */
  fail(error: LinkError): void {
    this.#error ??= error;
    this.inner.close();
  }

  /** Watched by `watch` from now on. */
  watchedBy(watch: LinkWatch | null): void {
    this.#watch = watch;
  }

  #check(): void {
    if (this.#error) throw this.#error;
  }
}

/** What a {@link LinkWatch} checks. */
export interface LinkWatchOptions {
  /** Milliseconds of no progress before the link is given up. */
  timeoutMs: number;
  /** Waiting reads must see bytes within the timeout (the destination). */
  idleReads: boolean;
  /** Told once, when the link is given up. */
  onExpire?: (e: LinkError) => void;
  /** The clock (default `performance.now`); tests drive {@link LinkWatch.check} themselves. */
  now?: () => number;
  /** False: no timer (tests call check()). */
  timer?: boolean;
}

/** Watches one migration's channels (see the module doc). */
export class LinkWatch {
  readonly timeoutMs: number;
  readonly #opts: LinkWatchOptions;
  readonly #now: () => number;
  readonly #channels = new Set<GuardedChannel>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #replyDue: number | null = null;
  #error: LinkError | null = null;

  /** Starts watching (a timer runs until {@link stop}). */
  constructor(opts: LinkWatchOptions) {
    this.#opts = opts;
    this.timeoutMs = opts.timeoutMs;
    this.#now = opts.now ?? performanceNow;
    if (opts.timer !== false) {
      const every = Math.max(10, Math.min(1000, Math.floor(opts.timeoutMs / 4)));
      this.#timer = setInterval(() => this.check(), every);
    }
  }

  /** The error the link was given up with, or null. */
  get error(): LinkError | null {
    return this.#error;
  }

  /** Guards `ch` (a GuardedChannel already is one) and watches it; returns the guarded one. */
  guard(ch: Channel): GuardedChannel {
    const g = ch instanceof GuardedChannel ? ch : new GuardedChannel(ch, this.#now);
    this.#channels.add(g);
    g.watchedBy(this);
    if (this.#error) g.fail(this.#error);
    return g;
  }

  /** Stops watching `ch` (it was closed). */
  forget(ch: GuardedChannel): void {
    this.#channels.delete(ch);
    ch.watchedBy(null);
  }

  /** A PING went out that the peer answers: something must arrive within the timeout. */
  expectReply(): void {
    this.#replyDue ??= this.#now();
  }

  /** Bytes arrived on a watched channel. */
  heard(): void {
    this.#replyDue = null;
  }

  /** Stops the timer (the migration's run is over). */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Applies the rules now; returns the error if the link is (now) given up. */
  check(): LinkError | null {
    if (this.#error) return this.#error;
    const now = this.#now();
    const t = this.timeoutMs;
    const secs = `${+(t / 1000).toFixed(1)} s`;
    let lastRead = 0;
    let waitingSince = Infinity;
    for (const c of this.#channels) {
      lastRead = Math.max(lastRead, c.lastRead);
      if (c.pendingReads > 0) waitingSince = Math.min(waitingSince, c.readSince);
      if (c.pendingWrites > 0 && now - Math.max(c.writeSince, c.lastWrite) > t) {
        return this.#expire(
          new LinkError(
            "stalled",
            `the peer stopped taking data: nothing could be sent for ${secs}`,
          ),
        );
      }
    }
    if (
      this.#opts.idleReads && waitingSince !== Infinity &&
      now - Math.max(lastRead, waitingSince) > t
    ) {
      return this.#expire(new LinkError("timeout", `nothing received from the peer for ${secs}`));
    }
    if (this.#replyDue !== null && now - this.#replyDue > t) {
      return this.#expire(new LinkError("timeout", `no answer from the peer for ${secs}`));
    }
    return null;
  }

  #expire(e: LinkError): LinkError {
    this.#error = e;
    this.stop();
    for (const c of this.#channels) c.fail(e);
    this.#opts.onExpire?.(e);
    return e;
  }
}
