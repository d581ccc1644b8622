/**
 * Data-path Workers kept warm between migrations. A source Worker whose run ended cleanly (it
 * said `done`) waits, idle, for the agent's next outgoing migration instead of being
 * terminated: starting one costs ~75 ms of CPU (a V8 isolate and the engine's modules) and
 * hundreds of ms on a busy host, paid by every migration before. An agent that may be a source
 * starts one ahead (prestart), so its first migration does not wait either: measured
 * 2026-12-07, status `setup` to `active` 37–39 ms with a Worker started at the POST, 15 ms
 * with one started ahead (1 GiB guest, 2 cores). At most one idle source Worker is kept (a
 * multifd agent also keeps its page channels' Workers started ahead, one per channel; those run
 * one migration each); one that crashed, or that the agent terminated, is never reused. Runs
 * are numbered: what a finished run's leftovers post later is dropped (worker_host.ts), and the
 * Worker sets up each run from its start message alone (source_worker.ts). Every Worker started
 * ahead warms its data path up while it waits (engine/warm_up.ts).
 *
 * @module
 */

/** The idle Workers of one agent, by module URL. */
export class WarmWorkers {
  readonly #idle = new Map<string, Worker[]>();
  #closed = false;

  #list(url: URL): Worker[] {
    let list = this.#idle.get(url.href);
    if (!list) this.#idle.set(url.href, list = []);
    return list;
  }

  /** An idle Worker of `url` (the one started first), or a new one. */
  take(url: URL): Worker {
    return this.#list(url).shift() ?? new Worker(url, { type: "module" });
  }

  /**
   * Starts Workers of `url` now until `count` are kept idle for the next takes (the first
   * migration then does not wait for them to come up). One that fails to load is dropped; the
   * take after it starts a new one, whose failure is reported. Each is sent `warmUp` at once, to
   * make its data path hot while it waits.
   */
  prestart(url: URL, warmUp: object = { t: "warm-up" }, count = 1): void {
    const list = this.#list(url);
    while (!this.#closed && list.length < count) {
      const worker = new Worker(url, { type: "module" });
      worker.onerror = (e) => {
        e.preventDefault();
        const at = list.indexOf(worker);
        if (at >= 0) list.splice(at, 1);
        worker.terminate();
      };
      // While it waits, it makes its data path hot (engine/warm_up.ts).
      worker.postMessage(warmUp);
      list.push(worker);
    }
  }

  /** Keeps `worker` (of `url`, its run ended cleanly) for the next take, or terminates it. */
  give(url: URL, worker: Worker): void {
    worker.onmessage = null;
    worker.onerror = null;
    const list = this.#list(url);
    if (this.#closed || list.length > 0) worker.terminate();
    else list.push(worker);
  }

  /** Terminates the idle Workers; later ones given back are terminated too (agent shutdown). */
  close(): void {
    this.#closed = true;
    for (const list of this.#idle.values()) for (const w of list) w.terminate();
    this.#idle.clear();
  }
}
