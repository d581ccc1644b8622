/**
 * A wake-up for an async loop: `wait(ms)` resolves on the next `notify()` or after `ms`.
 *
 * @module
 */

/** Wakes one or more waiters; carries no value. */
export class Signal {
  /**
   * The waits not yet over. A wait that times out leaves at once: loops wait with a timeout for
   * hours when nothing notifies them (a paused postcopy, a held COLO, the postcopy pacer), and a
   * timed-out waiter left here until the next notify cost ~650 bytes per wait.
   */
  #waiters = new Set<() => void>();

  /** Waits not over yet (neither notified nor timed out). */
  get waiting(): number {
    return this.#waiters.size;
  }

  /** Wakes every current waiter. */
  notify(): void {
    const w = this.#waiters;
    this.#waiters = new Set();
    for (const f of w) f();
  }

  /** Resolves on the next notify, or after `ms` (Infinity: only on notify). */
  wait(ms = Infinity): Promise<void> {
    return new Promise((resolve) => {
      let t: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(t);
        this.#waiters.delete(done);
        resolve();
      };
      this.#waiters.add(done);
      if (Number.isFinite(ms)) t = setTimeout(done, Math.max(0, ms));
    });
  }
}
