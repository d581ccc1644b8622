/**
 * A wake-up for an async loop: `wait(ms)` resolves on the next `notify()` or after `ms`.
 *
 * @module
 */

/** Wakes one or more waiters; carries no value. */
export class Signal {
  #waiters: (() => void)[] = [];

  /** Wakes every current waiter. */
  notify(): void {
    const w = this.#waiters;
    this.#waiters = [];
    for (const f of w) f();
  }

  /** Resolves on the next notify, or after `ms` (Infinity: only on notify). */
  wait(ms = Infinity): Promise<void> {
    return new Promise((resolve) => {
      let t: ReturnType<typeof setTimeout> | undefined;
      const done = () => {
        clearTimeout(t);
        resolve();
      };
      this.#waiters.push(done);
      if (Number.isFinite(ms)) t = setTimeout(done, Math.max(0, ms));
    });
  }
}
