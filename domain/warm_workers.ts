/**
 * Data-path Workers kept warm between migrations. A source Worker whose run ended cleanly (it
 * said `done`) waits, idle, for the agent's next outgoing migration instead of being
 * terminated: starting one costs ~75 ms of CPU (a V8 isolate and the engine's modules) and
 * hundreds of ms on a busy host, paid by every migration before. At most one idle Worker per
 * module is kept; one that crashed, or that the agent terminated, is never reused. Runs are
 * numbered: what a finished run's leftovers post later is dropped (worker_host.ts), and the
 * Worker sets up each run from its start message alone (source_worker.ts).
 *
 * @module
 */

/** The idle Workers of one agent, by module URL. */
export class WarmWorkers {
  readonly #idle = new Map<string, Worker>();
  #closed = false;

  /** An idle Worker of `url`, or a new one. */
  take(url: URL): Worker {
    const idle = this.#idle.get(url.href);
    if (idle) {
      this.#idle.delete(url.href);
      return idle;
    }
    return new Worker(url, { type: "module" });
  }

  /** Keeps `worker` (of `url`, its run ended cleanly) for the next take, or terminates it. */
  give(url: URL, worker: Worker): void {
    worker.onmessage = null;
    worker.onerror = null;
    if (this.#closed || this.#idle.has(url.href)) worker.terminate();
    else this.#idle.set(url.href, worker);
  }

  /** Terminates the idle Workers; later ones given back are terminated too (agent shutdown). */
  close(): void {
    this.#closed = true;
    for (const w of this.#idle.values()) w.terminate();
    this.#idle.clear();
  }
}
