/**
 * Migration blockers (the seed's migrate_add_blocker / migrate_del_blocker /
 * migration_is_blocked): reasons that make `migrate` fail while they are registered.
 *
 * @module
 */
import { DomainError } from "./errors.ts";

/** One registered blocker. */
export interface Blocker {
  id: string;
  reason: string;
}

/** At most this many blockers are kept; more are refused. */
export const MAX_BLOCKERS = 1024;

/** What migrate_add_blocker looks at. */
export interface BlockerGate {
  /** The seed's migration_is_idle(): the outgoing status is none, cancelled, completed or failed. */
  idle: boolean;
  /** `--only-migratable` / `migration.only-migratable=on`. */
  onlyMigratable: boolean;
}

/** The registered blockers, oldest first. */
export class Blockers {
  readonly #items: Blocker[] = [];
  #next = 1;

  /** Every blocker, oldest first. */
  list(): Blocker[] {
    return this.#items.map((b) => ({ ...b }));
  }

  /** The blocker whose reason `migrate` reports: the newest, as the seed prepends. */
  newest(): Blocker | null {
    return this.#items.at(-1) ?? null;
  }

  /** migrate_add_blocker: refused under --only-migratable and while a migration runs. */
  add(reason: string, gate: BlockerGate): Blocker {
    if (gate.onlyMigratable) {
      throw new DomainError(
        "wrong-state",
        `disallowing migration blocker (--only_migratable) for: ${reason}`,
      );
    }
    if (!gate.idle) {
      throw new DomainError(
        "active",
        `disallowing migration blocker (migration in progress) for: ${reason}`,
      );
    }
    if (this.#items.length >= MAX_BLOCKERS) {
      throw new DomainError("wrong-state", `Too many migration blockers (at most ${MAX_BLOCKERS})`);
    }
    const blocker = { id: `blocker-${this.#next++}`, reason };
    this.#items.push(blocker);
    return { ...blocker };
  }

  /** migrate_del_blocker by id. */
  remove(id: string): void {
    const i = this.#items.findIndex((b) => b.id === id);
    if (i < 0) throw new DomainError("not-found", `Blocker '${id}' not found`, "DeviceNotFound");
    this.#items.splice(i, 1);
  }
}
