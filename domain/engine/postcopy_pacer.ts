/**
 * Paces postcopy's background pages under max-postcopy-bandwidth (QEMU's BUFFER_DELAY
 * windows: 100 ms, each with a budget of a tenth of the limit). Requested pages never wait
 * here: the guest is blocked on them.
 *
 * Two things keep the average at the limit however small it is: a chunk never asks for more
 * pages than the window has budget for (at least one page, so a limit below a page per window
 * still moves), and what a window overspent is carried into the next ones instead of being
 * forgiven. Before this, every window sent a whole 64-page chunk: at 64 KiB/s that was 2.5
 * MiB/s, ~40× the limit.
 *
 * @module
 */

/** Length of a window in ms (QEMU's BUFFER_DELAY). */
export const PACER_WINDOW_MS = 100;
/** Windows per second (QEMU's XFER_LIMIT_RATIO). */
const WINDOWS_PER_SECOND = 1000 / PACER_WINDOW_MS;

/** What the pacer allows now: a number of pages, or a wait. */
export type PacerStep = { pages: number } | { waitMs: number };

/** A window-budget pacer with carried overspend; time is passed in (tests use a fake clock). */
export class PostcopyPacer {
  #windowStart: number;
  #windowBytes = 0;

  /** Starts the first window at `now` (ms). */
  constructor(now: number) {
    this.#windowStart = now;
  }

  /**
   * How many pages (of `pageBytes` each, at most `maxPages`) may go at `now` under `limit`
   * bytes per second (0: unlimited), or how long to wait before asking again.
   */
  next(limit: number, now: number, pageBytes: number, maxPages: number): PacerStep {
    const elapsed = now - this.#windowStart;
    if (elapsed >= PACER_WINDOW_MS) {
      const windows = Math.floor(elapsed / PACER_WINDOW_MS);
      this.#windowStart += windows * PACER_WINDOW_MS;
      const paid = limit > 0 ? windows * limit / WINDOWS_PER_SECOND : Infinity;
      this.#windowBytes = Math.max(0, this.#windowBytes - paid);
    }
    if (limit <= 0) return { pages: maxPages };
    const budget = limit / WINDOWS_PER_SECOND - this.#windowBytes;
    if (budget <= 0) return { waitMs: Math.max(1, this.#windowStart + PACER_WINDOW_MS - now) };
    return { pages: Math.min(maxPages, Math.max(1, Math.floor(budget / pageBytes))) };
  }

  /** Counts `bytes` written for the pages {@link next} allowed. */
  sent(bytes: number): void {
    this.#windowBytes += bytes;
  }
}
