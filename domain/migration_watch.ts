/**
 * What an agent publishes about its migrations besides their status changes: a `progress`
 * event (the MigrationInfo) about every 250 ms while one runs and once when it ends, a
 * MIGRATION_CONVERGENCE event when the outgoing migration's verdict changes, and the
 * outgoing migration's `x-policy` (its timeouts fire an action, recorded in the history
 * and published as MIGRATION_POLICY).
 *
 * @module
 */
import type { EventBus } from "./event_bus.ts";
import type { FerryEventMap } from "./events.ts";
import type { Migration } from "./migration.ts";
import { convergenceOf, migrationInfo, remainingAfterSync } from "./migration_info.ts";
import type { Outgoing } from "./outgoing.ts";
import type { PolicyTracker } from "./policy.ts";
import { isFinished, isSetupOrActive, type MigrationStatus } from "./state_machine.ts";

/** Milliseconds between progress events (the contract's "about every 250 ms"). */
const PROGRESS_MS = 250;

/** The migrations a watch looks at, asked afresh at each tick. */
export interface Watched {
  outgoing(): Outgoing | null;
  incoming(): Migration | null;
}

/** Progress, convergence and policy of an agent's migrations (see the module doc). */
export class MigrationWatch {
  readonly #events: EventBus<FerryEventMap>;
  readonly #watched: Watched;
  readonly #progressMs: number;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The outgoing migration's policy, when `x-policy` was given (set at migrate). */
  policy: PolicyTracker | null = null;

  /** Publishes on `events` about the migrations `watched` names, every `progressMs` while one runs. */
  constructor(events: EventBus<FerryEventMap>, watched: Watched, progressMs = PROGRESS_MS) {
    this.#events = events;
    this.#watched = watched;
    this.#progressMs = progressMs;
  }

  /** Called on every status change of a migration (after its MIGRATION event). */
  changed(m: Migration, to: MigrationStatus): void {
    if (isFinished(to) || !isSetupOrActive(to)) {
      this.#publishProgress(m);
      // The last running migration ended: no timer outlives it (not even until its next tick).
      if (this.#running().length === 0) this.close();
    }
    if (to === "active" && this.#timer === undefined) {
      this.#timer = setInterval(() => this.#tick(), this.#progressMs);
    }
  }

  /** Stops the timer (agent shutdown). */
  close(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The migrations past setup and still running. */
  #running(): Migration[] {
    return [this.#watched.outgoing()?.migration, this.#watched.incoming()].filter(
      (m): m is Migration => !!m && m.status !== "setup" && isSetupOrActive(m.status),
    );
  }

  #tick(): void {
    const out = this.#watched.outgoing();
    const running = this.#running();
    for (const m of running) this.#publishProgress(m);
    if (out?.migration.status === "active") this.#watchConvergence(out);
    if (running.length === 0) this.close();
  }

  /** Publishes verdict changes and carries out the policy when one of its timeouts fires. */
  #watchConvergence(out: Outgoing): void {
    const m = out.migration;
    const c = convergenceOf(m);
    if (c.verdict !== m.verdict) {
      m.verdict = c.verdict;
      this.#events.publish("MIGRATION_CONVERGENCE", { id: m.id, ...c });
    }
    // What is left as x-progress counts it: ram.remaining says 0 right after a sync, a
    // "new low" the migration would then never beat, firing the progress timeout early.
    const firing = this.policy?.observe(Date.now(), remainingAfterSync(m));
    if (!firing) return;
    let note = `policy: ${firing.trigger} fired (step ${firing.step}): ${firing.action}`;
    if (firing.action === "cancel") out.cancel();
    else if (firing.action === "auto-converge") out.command({ t: "auto-converge" });
    else if (m.caps["postcopy-ram"]) out.command({ t: "postcopy" });
    else note += " skipped: the postcopy-ram capability is off";
    // A repeat of the same action counts on its line (Migration.note).
    m.note(note, `${firing.trigger} ${firing.action}`);
    this.#events.publish("MIGRATION_POLICY", { id: m.id, ...firing, note });
  }

  #publishProgress(m: Migration): void {
    this.#events.publish("progress", migrationInfo(m));
  }
}
