/**
 * The history of migrations as resources (`GET /migrations`, `GET /migrations/{id}`): the
 * most recent {@link HISTORY} migrations of both sides, oldest first.
 *
 * @module
 */
import { DomainError } from "./errors.ts";
import type { Migration } from "./migration.ts";
import { type MigrationInfo, migrationInfo } from "./migration_info.ts";

/** Migrations kept, at most. */
export const HISTORY = 32;

/** The recent migrations. */
export class MigrationHistory {
  readonly #list: Migration[] = [];

  /** Keeps `m` (dropping the oldest past HISTORY); returns it. */
  record(m: Migration): Migration {
    this.#list.push(m);
    if (this.#list.length > HISTORY) this.#list.shift();
    return m;
  }

  /** Their infos, newest first. */
  list(opts: { blocktime: boolean }): MigrationInfo[] {
    return this.#list.map((m) => migrationInfo(m, { ...opts, history: true })).reverse();
  }

  /** One migration's info by id; a not-found DomainError when none has it. */
  get(id: string, opts: { blocktime: boolean }): MigrationInfo {
    const m = this.#list.find((x) => x.id === id);
    if (!m) throw new DomainError("not-found", `Migration '${id}' not found`, "DeviceNotFound");
    return migrationInfo(m, { ...opts, history: true });
  }
}
