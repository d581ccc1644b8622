/**
 * Data-path Workers kept warm between migrations. A source Worker whose run ended cleanly (it
 * said `done`) waits, idle, for the agent's next outgoing migration instead of being
 * terminated: starting one costs ~75 ms of CPU (a V8 isolate and the engine's modules) and
 * hundreds of ms on a busy host, paid by every migration before. An agent that may be a source
 * starts one ahead (prestart), so its first migration does not wait either: measured
 * 2026-12-07, status `setup` to `active` 37–39 ms with a Worker started at the POST, 15 ms
 * with one started ahead (1 GiB guest, 2 cores). At most one idle Worker per module is kept;
 * one that crashed, or that the agent terminated, is never reused. Runs are numbered: what a
 * finished run's leftovers post later is dropped (worker_host.ts), and the Worker sets up each
 * run from its start message alone (source_worker.ts).
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

  /**
   * Starts a Worker of `url` now and keeps it idle for the next take, unless one is kept
   * already (the first migration then does not wait for a Worker to come up). One that fails
   * to load is dropped; the take after it starts a new one, whose failure is reported. It is
   * sent `warmUp` at once, to make its data path hot while it waits.
   */
  prestart(url: URL, warmUp: object = { t: "warm-up" }): void {
    if (this.#closed || this.#idle.has(url.href)) return;
    const worker = new Worker(url, { type: "module" });
    worker.onerror = (e) => {
      e.preventDefault();
      if (this.#idle.get(url.href) === worker) this.#idle.delete(url.href);
      worker.terminate();
    };
    // While it waits, it makes its data path hot (engine/warm_up.ts).
    worker.postMessage(warmUp);
    this.#idle.set(url.href, worker);
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
