/**
 * Bounds on what clients can make the agent do at once. Requests that cost a full pass
 * over guest RAM (`GET /machine/digest`) run one at a time: a few wait their turn in a
 * bounded queue, the rest get 429 with a Retry-After measured from the last pass. Event
 * streams (SSE) hold a slot each, up to `--max-sse-subscribers`; beyond it a new stream
 * gets 503.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { problem } from "./problem.ts";

/** Requests that may wait for a RAM pass while one runs (a test, a dashboard, a script). */
export const RAM_PASS_QUEUE = 4;
/** The default `--max-sse-subscribers`. */
export const MAX_SSE_SUBSCRIBERS = 256;

interface Waiter {
  wake: () => void;
}

/** One holder at a time, at most `queueLength` waiting; counts what it did. */
export class ExclusiveGate {
  readonly queueLength: number;
  /** Holders now (0 or 1). */
  running = 0;
  /** The most holders there ever were at once (1 once anything ran). */
  maxRunning = 0;
  readonly #queue: Waiter[] = [];
  #lastMs = 0;

  /** A gate whose queue holds `queueLength` waiters. */
  constructor(queueLength: number) {
    this.queueLength = queueLength;
  }

  /** Requests waiting for their turn. */
  get waiting(): number {
    return this.#queue.length;
  }

  /** Seconds until a refused request would likely find room: the last run times those ahead. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil(this.#lastMs * (this.#queue.length + 1) / 1000));
  }

  /**
   * Waits for the gate; resolves to its release, to null when `signal` aborted first (the
   * client left), or returns null at once when the queue is full.
   */
  enter(signal?: AbortSignal): Promise<(() => void) | null> | null {
    if (this.running === 0 && this.#queue.length === 0) return Promise.resolve(this.#hold());
    if (this.#queue.length >= this.queueLength) return null;
    return new Promise((resolve) => {
      const waiter: Waiter = {
        wake: () => {
          signal?.removeEventListener("abort", leave);
          resolve(this.#hold());
        },
      };
      const leave = () => {
        const at = this.#queue.indexOf(waiter);
        if (at >= 0) this.#queue.splice(at, 1);
        resolve(null);
      };
      if (signal?.aborted) return resolve(null);
      signal?.addEventListener("abort", leave, { once: true });
      this.#queue.push(waiter);
    });
  }

  #hold(): () => void {
    this.running++;
    this.maxRunning = Math.max(this.maxRunning, this.running);
    const started = performance.now();
    let held = true;
    return () => {
      if (!held) return;
      held = false;
      this.running--;
      this.#lastMs = performance.now() - started;
      this.#queue.shift()?.wake();
    };
  }

  /** Middleware holding the gate for the rest of the request; 429 + Retry-After when full. */
  middleware(what: string): MiddlewareHandler {
    return async (c, next) => {
      const turn = this.enter(c.req.raw.signal);
      if (turn === null) {
        c.header("Retry-After", String(this.retryAfterSeconds()));
        return problem(
          c,
          429,
          `${what} runs one at a time and ${this.queueLength} are already waiting; retry later`,
        );
      }
      const release = await turn;
      if (release === null) return problem(c, 503, "The client went away while waiting");
      try {
        return await next();
      } finally {
        release();
      }
    };
  }
}

/** Counted slots for open event streams. */
export class StreamSlots {
  readonly max: number;
  /** Streams open now. */
  open = 0;

  /** At most `max` streams at once. */
  constructor(max: number) {
    this.max = max;
  }

  /** A slot's release (idempotent), or null when all are taken. */
  take(): (() => void) | null {
    if (this.open >= this.max) return null;
    this.open++;
    let held = true;
    return () => {
      if (held) this.open--;
      held = false;
    };
  }
}
