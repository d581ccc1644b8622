/**
 * The writer the migration engine sends through: writes whole buffers, counts every byte
 * (like qemu_ftell), limits the rate the way QEMU does, remembers the first error (like
 * qemu_file_get_error), and can be shut down from outside to unblock a stuck send (like
 * migrate_fd_cancel's qemu_file_shutdown).
 *
 * Rate limiting (QEMU's BUFFER_DELAY / XFER_LIMIT_RATIO): time is cut into 100 ms windows,
 * each with a budget of rateLimit / 10 bytes. A piece may be written while the window's
 * bytes are under budget (pieces are cut to the budget left, but never below 4 KiB, so the
 * overshoot is at most a page); once the budget is spent the writer waits for the window to
 * end and a new one starts. Unlimited writes go to the channel whole.
 *
 * Writes are serialised: each write's bytes reach the channel contiguously, in call order.
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";

/** Length of one rate-limit window in milliseconds (QEMU's BUFFER_DELAY). */
export const BUFFER_DELAY_MS = 100;
/** Windows per second (QEMU's XFER_LIMIT_RATIO): a window's budget is rate / this. */
export const XFER_LIMIT_RATIO = 1000 / BUFFER_DELAY_MS;
/** Smallest piece a rate-limited write is cut into. */
const MIN_LIMITED_PIECE = 4096;

/** The writer was shut down (migration cancelled); the write did not complete. */
export class ChannelShutdownError extends Error {
  /** @param message defaults to "Channel was shut down". */
  constructor(message = "Channel was shut down") {
    super(message);
    this.name = "ChannelShutdownError";
  }
}

/** Options for ChannelWriter. */
export interface ChannelWriterOptions {
  /** Bytes per second; 0 or Infinity = unlimited (the default). */
  rateLimit?: number;
  /** Clock in milliseconds (default `performance.now`). */
  now?: () => number;
  /**
   * Waits `ms` milliseconds or until `signal` aborts, whichever is first (default: a timer).
   * Inject together with `now` to test rate limiting without real time.
   */
  sleep?: (ms: number, signal: AbortSignal) => Promise<void>;
}

/** Counting, rate-limited writer over a Channel that can be shut down from outside. */
export class ChannelWriter {
  /** The channel written to. */
  readonly channel: Channel;
  readonly #now: () => number;
  readonly #sleep: (ms: number, signal: AbortSignal) => Promise<void>;
  #rateLimit = 0;
  #windowStart: number;
  #windowBytes = 0;
  #bytesWritten = 0;
  #error: Error | null = null;
  #isShutdown = false;
  /**
   * Rejects the write on the channel now under way (at most one: writes are serialised), so a
   * shutdown ends it even on a channel whose close leaves its writes pending. Per write, not
   * one promise for the writer's life: racing each write against a long-lived promise left a
   * reaction on it per write (~300 bytes each, never freed until the shutdown: a COLO link that
   * checkpoints for days, or any long migration, grew without bound).
   */
  #abortWrite: ((e: Error) => void) | null = null;
  #wake: AbortController | null = null;
  #tail: Promise<void> = Promise.resolve();

  /** Writes to `channel`; see ChannelWriterOptions. */
  constructor(channel: Channel, opts: ChannelWriterOptions = {}) {
    this.channel = channel;
    this.#now = opts.now ?? performanceNow;
    this.#sleep = opts.sleep ?? sleep;
    this.#windowStart = this.#now();
    this.setRateLimit(opts.rateLimit ?? 0);
  }

  /** Every byte the channel has accepted through this writer. */
  get bytesWritten(): number {
    return this.#bytesWritten;
  }

  /** The current limit in bytes per second (0 = unlimited). */
  get rateLimit(): number {
    return this.#rateLimit;
  }

  /** True while the current window's budget is spent (like qemu_file_rate_limit). */
  get rateLimited(): boolean {
    if (this.#isShutdown || this.#error !== null) return true;
    if (this.#rateLimit === 0) return false;
    if (this.#now() >= this.#windowStart + BUFFER_DELAY_MS) return false;
    return this.#windowBytes >= this.#rateLimit / XFER_LIMIT_RATIO;
  }

  /** The first error seen (a failed write, or ChannelShutdownError), or null. */
  get error(): Error | null {
    return this.#error;
  }

  /** Changes the limit now, waking a write waiting for its window to re-check. */
  setRateLimit(bytesPerSecond: number): void {
    if (Number.isNaN(bytesPerSecond) || bytesPerSecond < 0) {
      throw new RangeError(`rate limit must be >= 0 bytes/s, got ${bytesPerSecond}`);
    }
    this.#rateLimit = bytesPerSecond === Infinity ? 0 : bytesPerSecond;
    this.#wake?.abort();
  }

  /** Writes all of `p`; rejects with the first error, or ChannelShutdownError after shutdown. */
  write(p: Uint8Array): Promise<void> {
    const run = this.#tail.then(() => this.#writeAll(p));
    this.#tail = run.catch(() => {});
    return run;
  }

  /** Resolves when a write could go out without waiting for the rate limit. */
  async waitForBudget(): Promise<void> {
    await this.#tail;
    await this.#budget();
  }

  /**
   * Cancels: closes the channel (so a write stuck on a peer that stopped reading rejects at
   * once) and makes every pending and later write reject with ChannelShutdownError.
   */
  shutdown(): void {
    if (this.#isShutdown) return;
    this.#isShutdown = true;
    this.#error ??= new ChannelShutdownError();
    this.#abortWrite?.(new ChannelShutdownError());
    this.#wake?.abort();
    try {
      this.channel.close();
    } catch {
      // Closing is best effort; writes reject regardless.
    }
  }

  async #writeAll(p: Uint8Array): Promise<void> {
    this.#check();
    let off = 0;
    while (off < p.length) {
      // Unlimited: no window to wait for (the hot path of an unlimited migration).
      const allowance = this.#rateLimit === 0 ? Infinity : await this.#budget();
      this.#check();
      const end = Math.min(p.length, off + allowance);
      const piece = off === 0 && end === p.length ? p : p.subarray(off, end);
      let n: number;
      try {
        n = await new Promise<number>((resolve, reject) => {
          this.#abortWrite = reject;
          this.channel.write(piece).then(resolve, reject);
        });
      } catch (err) {
        throw this.#fail(err);
      } finally {
        this.#abortWrite = null;
      }
      if (!(n > 0)) throw this.#fail(new Error(`channel accepted ${n} of ${piece.length} bytes`));
      off += n;
      this.#bytesWritten += n;
      this.#windowBytes += n;
    }
  }

  /** Waits until the window has budget left; resolves to how many bytes may go now. */
  async #budget(): Promise<number> {
    for (;;) {
      this.#check();
      const now = this.#now();
      if (now >= this.#windowStart + BUFFER_DELAY_MS) {
        this.#windowStart = now;
        this.#windowBytes = 0;
      }
      if (this.#rateLimit === 0) return Infinity;
      const budget = this.#rateLimit / XFER_LIMIT_RATIO;
      if (this.#windowBytes < budget) {
        return Math.max(MIN_LIMITED_PIECE, Math.ceil(budget - this.#windowBytes));
      }
      const wake = new AbortController();
      this.#wake = wake;
      await this.#sleep(this.#windowStart + BUFFER_DELAY_MS - now, wake.signal);
      if (this.#wake === wake) this.#wake = null;
    }
  }

  #check(): void {
    if (this.#isShutdown) throw new ChannelShutdownError();
    if (this.#error !== null) throw this.#error;
  }

  #fail(err: unknown): Error {
    if (this.#isShutdown) return new ChannelShutdownError();
    this.#error ??= err instanceof Error ? err : new Error(String(err));
    return this.#error;
  }
}

/**
 * The default clock: one function for every writer, so that a data path compiled for the
 * warm-up's writer (domain/engine/warm_up.ts) still fits a migration's.
 */
function performanceNow(): number {
  return performance.now();
}

/** Resolves after `ms` milliseconds, or at once when `signal` aborts; leaves no timer behind. */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, Math.max(0, ms));
    signal.addEventListener("abort", done);
  });
}
