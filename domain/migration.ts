/**
 * One migration as a resource: its id, side, URI, state machine, shared counters and
 * error text. The status mirror lets the data-path Worker read the status cheaply.
 *
 * @module
 */
import {
  MIGRATION_STATUSES,
  type MigrationStatus,
  type Side,
  StateMachine,
} from "./state_machine.ts";
import { createStats } from "./engine/stats.ts";

/** Called after each status change of any migration. */
export type MigrationListener = (m: Migration, from: MigrationStatus, to: MigrationStatus) => void;

let counter = 0;

/** One outgoing or incoming migration. */
export class Migration {
  readonly id: string;
  readonly side: Side;
  readonly uri: string;
  readonly machine: StateMachine;
  readonly stats: Float64Array;
  readonly statusCell: Int32Array;
  readonly createdAt = new Date().toISOString();
  /** The capabilities the migration runs with (fixed at start, as QEMU's are). */
  caps: Readonly<Record<string, boolean>> = {};
  /** The parameters in force (updated when they change live). */
  params: Readonly<Record<string, number | boolean | string>> = {};
  /** The last convergence verdict published for it. */
  verdict = "";
  /** The seed's `s->error`: the first error only. */
  error: string | null = null;
  /** Escalations, policy decisions and other notes, in order. */
  readonly history: { time: string; status: MigrationStatus; note?: string }[] = [];

  /**
   * Creates a migration in status none; the listener hears every transition. An incoming
   * attempt after a failed one reuses the Worker's counters and status cell (`shared`).
   */
  constructor(
    side: Side,
    uri: string,
    listener: MigrationListener,
    shared?: { stats: Float64Array; statusCell: Int32Array },
  ) {
    this.stats = shared?.stats ?? createStats();
    this.statusCell = shared?.statusCell ?? new Int32Array(new SharedArrayBuffer(4));
    this.id = `${side === "source" ? "out" : "in"}-${Date.now().toString(36)}-${
      (++counter).toString(36)
    }`;
    this.side = side;
    this.uri = uri;
    this.machine = new StateMachine(side, (from, to) => {
      Atomics.store(this.statusCell, 0, MIGRATION_STATUSES.indexOf(to));
      this.history.push({ time: new Date().toISOString(), status: to });
      listener(this, from, to);
    });
  }

  /** The current status. */
  get status(): MigrationStatus {
    return this.machine.status;
  }

  /** Records the first error (later ones are dropped, as migrate_set_error does). */
  setError(message: string): void {
    this.error ??= message;
  }
}
