/**
 * The migration state machine: QEMU's MigrationStatus values, the explicit table of
 * allowed transitions, and a compare-and-set `transition(from, to)` that is the only
 * way a status ever changes. Every successful transition is reported to the listener
 * (which publishes the MIGRATION event), in order.
 *
 * @module
 */

/** Every status QEMU's query-migrate can report, in QMP spelling. */
export const MIGRATION_STATUSES = [
  "none",
  "setup",
  "cancelling",
  "cancelled",
  "active",
  "postcopy-active",
  "postcopy-paused",
  "postcopy-recover",
  "completed",
  "failed",
  "colo",
  "pre-switchover",
  "device",
] as const;

/** A migration status in QMP spelling. */
export type MigrationStatus = typeof MIGRATION_STATUSES[number];

/** Which end of a migration a state machine belongs to. */
export type Side = "source" | "destination";

/**
 * Allowed transitions, per side. Derived from the seed's `migrate_set_state` calls:
 * migrate_init (none → setup), migration_thread (setup → active), migration_completion,
 * migration_maybe_pause (→ pre-switchover → device | postcopy-active), postcopy_start,
 * postcopy_pause / recovery, migrate_fd_cancel (any setup-or-active → cancelling) and
 * migrate_fd_cleanup (cancelling → cancelled).
 */
export const TRANSITIONS: Record<
  Side,
  Partial<Record<MigrationStatus, readonly MigrationStatus[]>>
> = {
  source: {
    "none": ["setup"],
    "setup": ["active", "failed", "cancelling"],
    "active": ["completed", "failed", "cancelling", "pre-switchover", "postcopy-active", "colo"],
    "pre-switchover": ["device", "postcopy-active", "failed", "cancelling"],
    "device": ["completed", "failed", "cancelling", "colo"],
    "postcopy-active": ["completed", "failed", "cancelling", "postcopy-paused"],
    "postcopy-paused": ["postcopy-recover", "failed", "cancelling"],
    "postcopy-recover": ["postcopy-active", "postcopy-paused", "failed", "cancelling"],
    "cancelling": ["cancelled"],
    "colo": ["completed", "failed"],
  },
  destination: {
    "none": ["setup"],
    "setup": ["active", "failed"],
    "active": ["completed", "failed", "postcopy-active", "colo"],
    "postcopy-active": ["completed", "failed", "postcopy-paused"],
    "postcopy-paused": ["postcopy-recover", "failed"],
    "postcopy-recover": ["postcopy-active", "postcopy-paused", "failed"],
    "colo": ["completed", "failed"],
  },
};

/** True for the seed's `migration_is_setup_or_active` states. */
export function isSetupOrActive(status: MigrationStatus): boolean {
  return status === "setup" || status === "active" || status === "pre-switchover" ||
    status === "device" || status.startsWith("postcopy-");
}

/** True when a migration has ended (the seed's idle states other than none). */
export function isFinished(status: MigrationStatus): boolean {
  return status === "completed" || status === "failed" || status === "cancelled";
}

/** Called after every successful transition, synchronously and in order. */
export type TransitionListener = (from: MigrationStatus, to: MigrationStatus, side: Side) => void;

/** One migration's status, changed only through {@link StateMachine.transition}. */
export class StateMachine {
  #status: MigrationStatus = "none";
  readonly side: Side;
  readonly #listener: TransitionListener;

  /** Creates a machine in status `none` for one side of one migration. */
  constructor(side: Side, listener: TransitionListener) {
    this.side = side;
    this.#listener = listener;
  }

  /** The current status. */
  get status(): MigrationStatus {
    return this.#status;
  }

  /**
   * Compare-and-set: moves `from` → `to` if the status is `from`, returning true and
   * notifying the listener; returns false (and changes nothing) otherwise.
   * A pair missing from {@link TRANSITIONS} is a programming error and throws.
   */
  transition(from: MigrationStatus, to: MigrationStatus): boolean {
    if (!TRANSITIONS[this.side][from]?.includes(to)) {
      throw new Error(`illegal ${this.side} transition ${from} -> ${to}`);
    }
    if (this.#status !== from) return false;
    this.#status = to;
    this.#listener(from, to, this.side);
    return true;
  }
}
