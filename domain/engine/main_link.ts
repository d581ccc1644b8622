/**
 * A data-path Worker's side of the link to the main thread: status requests answered by
 * the main thread's compare-and-set, and the read-only status mirror for quick checks.
 *
 * @module
 */
import { MIGRATION_STATUSES, type MigrationStatus } from "../state_machine.ts";
import type { MainMessage, WorkerMessage } from "./messages.ts";

/** Posts to the main thread and awaits transition answers. */
export class MainLink {
  #seq = 0;
  readonly #pending = new Map<number, (ok: boolean) => void>();
  readonly #status: Int32Array;
  readonly #post: (m: WorkerMessage) => void;

  /** Wraps the Worker's postMessage and the shared status mirror. */
  constructor(status: Int32Array, post: (m: WorkerMessage) => void) {
    this.#status = status;
    this.#post = post;
  }

  /** The main thread's current status, read from shared memory. */
  get status(): MigrationStatus {
    return MIGRATION_STATUSES[Atomics.load(this.#status, 0)];
  }

  /** Asks the main thread for `from` → `to`; resolves to whether it happened. */
  transition(from: MigrationStatus, to: MigrationStatus): Promise<boolean> {
    const seq = ++this.#seq;
    return new Promise((resolve) => {
      this.#pending.set(seq, resolve);
      this.#post({ t: "transition", seq, from, to });
    });
  }

  /** Sends any other message. */
  post(m: WorkerMessage): void {
    this.#post(m);
  }

  /** Feeds a main-thread message; returns false when it was not a transition answer. */
  receive(m: MainMessage): boolean {
    if (m.t !== "transition-result") return false;
    this.#pending.get(m.seq)?.(m.ok);
    this.#pending.delete(m.seq);
    return true;
  }
}
