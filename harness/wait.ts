/**
 * Waiting for a condition, not for time (the tests and the bench). `waitFor` polls a probe until
 * it yields a value and, when its generous deadline passes, fails saying what it waited for and
 * what it saw last. A test waits with it wherever it would otherwise sleep and hope.
 *
 * @module
 */

/** How long `waitFor` polls, and how often. */
export interface WaitOptions {
  /** Give up after this many ms (default 30 s: generous on a busy 2-core machine). */
  timeoutMs?: number;
  /**
   * Pause between probes, ms. Default: 10 ms at first, growing by half up to 100 ms, so that a
   * short wait ends at once and a long one costs little (each probe is an HTTP request or
   * more: polling every 20 ms cost a waiting test 25 ms of CPU per second).
   */
  intervalMs?: number;
}

/** The pauses of a wait: `fixed` every time, or 10 ms growing by half up to 100 ms. */
export function backoff(fixed?: number): () => number {
  let next = 10;
  return () => {
    if (fixed !== undefined) return fixed;
    const now = next;
    next = Math.min(100, next * 1.5);
    return now;
  };
}

/** What `waitFor` returns: the probe's value without the "not yet" values. */
export type Found<T> = Exclude<Awaited<T>, undefined | null | false>;

/**
 * Polls `probe` until it returns something other than `undefined`, `null` or `false`, and
 * returns that. A probe may throw to fail at once (an assertion that must hold meanwhile). After
 * `timeoutMs` it throws `timed out waiting for <what>` with the last value the probe returned.
 */
export async function waitFor<T>(
  what: string,
  probe: () => T,
  { timeoutMs = 30_000, intervalMs }: WaitOptions = {},
): Promise<Found<T>> {
  const deadline = performance.now() + timeoutMs;
  const pause = backoff(intervalMs);
  let last: Awaited<T>;
  for (;;) {
    last = await probe();
    if (last !== undefined && last !== null && last !== false) return last as Found<T>;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${last})`);
    }
    await new Promise((r) => setTimeout(r, pause()));
  }
}
