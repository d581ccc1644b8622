/**
 * The helper Workers a machine starts (vCPU, RAM preparation, digests): each is tracked until
 * dropped, so disposing the machine terminates whatever still runs.
 *
 * @module
 */

/** A set of started Workers; {@link spawn} starts one and waits for its first answer. */
export class WorkerSet {
  readonly #workers = new Set<Worker>();

  /** Starts `url`, sends it `message`, resolves with its first answer (the Worker stays). */
  async spawn<T>(url: URL, message: unknown): Promise<{ worker: Worker; answer: T }> {
    const worker = new Worker(url, { type: "module" });
    this.#workers.add(worker);
    try {
      const answer = await new Promise<T>((resolve, reject) => {
        worker.onmessage = (e: MessageEvent<T>) => resolve(e.data);
        worker.onerror = (e: ErrorEvent) => {
          e.preventDefault();
          reject(new Error(`${url.pathname.split("/").pop()}: ${e.message}`));
        };
        worker.postMessage(message);
      });
      return { worker, answer };
    } catch (e) {
      this.drop(worker);
      throw e;
    }
  }

  /** Tracks a Worker started elsewhere. */
  add(worker: Worker): void {
    this.#workers.add(worker);
  }

  /** Terminates `worker` and forgets it. */
  drop(worker: Worker): void {
    worker.terminate();
    this.#workers.delete(worker);
  }

  /** Terminates every Worker still tracked. */
  terminateAll(): void {
    for (const w of this.#workers) w.terminate();
    this.#workers.clear();
  }
}
