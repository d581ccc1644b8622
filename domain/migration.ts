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

/** One line of a migration's history (`x-history`). */
export interface HistoryEntry {
  time: string;
  status: MigrationStatus;
  note?: string;
  /** The same note (by key) came again this many times (Migration.note), the last at `last`. */
  repeats?: number;
  last?: string;
}

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
  /** Status changes, escalations, policy decisions and other notes, in order (see note()). */
  readonly history: HistoryEntry[] = [];
  #lastNote: HistoryEntry | null = null;
  #lastNoteKey = "";

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

  /**
   * Adds a note to the history. A note with the same `key` as the last entry's (still the last
   * line, in the same status) counts on that entry instead of adding one: a policy whose last
   * action fires again at every timeout of a migration that never converges (up to four times a
   * second) would otherwise grow the history for as long as the migration runs, and every
   * `GET /migrations` with it.
   */
  note(note: string, key = note): void {
    const time = new Date().toISOString();
    const last = this.history.at(-1);
    if (
      last && last === this.#lastNote && this.#lastNoteKey === key && last.status === this.status
    ) {
      last.repeats = (last.repeats ?? 0) + 1;
      last.last = time;
      return;
    }
    const entry: HistoryEntry = { time, status: this.status, note };
    this.history.push(entry);
    this.#lastNote = entry;
    this.#lastNoteKey = key;
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
