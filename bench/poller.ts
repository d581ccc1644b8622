/**
 * Scenario C's client: issues `GET /migrations/current` at a fixed rate (or back to back),
 * records each request's latency, and stops once the status is terminal. It doubles as the
 * scenario's completion detector, so its timestamps also give the wall-clock figures.
 *
 * @module
 */
import type { Json } from "./agent.ts";
import { wallNow } from "./measure.ts";

/** What a polling run saw. */
export interface PollResult {
  /** Latency of every request, in ms (request start to body read). */
  latencies: number[];
  /** The last body read (terminal status, or the last one before the timeout). */
  last: Json;
  /** Wall-clock ms of the end of the first request that saw a terminal status. */
  terminalAt: number;
  /** Requests that failed outright (network errors); they have no latency. */
  errors: number;
}

/** Options for {@link pollUntil}. */
export interface PollOptions {
  /** Requests per second; 0 = back to back. */
  rate: number;
  /** Give up after this many ms. */
  timeoutMs: number;
  /** Status values that end the polling. */
  terminal: RegExp;
}

/** One GET of `url`, timed. */
async function timedGet(url: string): Promise<{ ms: number; body: Json }> {
  const t0 = performance.now();
  const r = await fetch(url);
  const body = await r.json();
  return { ms: performance.now() - t0, body };
}

/** Polls `${base}/migrations/current` as `opts` says until a terminal status or the timeout. */
export async function pollUntil(base: string, opts: PollOptions): Promise<PollResult> {
  const url = `${base}/migrations/current`;
  const period = opts.rate > 0 ? 1000 / opts.rate : 0;
  const latencies: number[] = [];
  let errors = 0;
  let last: Json = null;
  const end = performance.now() + opts.timeoutMs;
  let next = performance.now();
  while (performance.now() < end) {
    try {
      const { ms, body } = await timedGet(url);
      latencies.push(ms);
      last = body;
      if (opts.terminal.test(String(body?.status))) {
        return { latencies, last, terminalAt: wallNow(), errors };
      }
    } catch {
      errors++;
    }
    if (period > 0) {
      next += period;
      const wait = next - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      else next = performance.now(); // fell behind: no burst to catch up
    }
  }
  return { latencies, last, terminalAt: NaN, errors };
}

/** Polls until `check(body)` holds (back to back), up to `timeoutMs`; returns the body. */
export async function pollFor(
  base: string,
  path: string,
  check: (body: Json) => boolean,
  timeoutMs: number,
  intervalMs = 0,
): Promise<Json> {
  const end = performance.now() + timeoutMs;
  let body: Json = null;
  while (performance.now() < end) {
    body = await (await fetch(base + path)).json();
    if (check(body)) return body;
    if (intervalMs > 0) await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`${base}${path} never reached the expected state: ${JSON.stringify(body)}`);
}
