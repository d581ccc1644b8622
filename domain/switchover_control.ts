/**
 * The switchover commands' checks, as the seed makes them: migrate-start-postcopy,
 * migrate-continue and migrate-pause refuse with its error texts; past the checks each is one
 * call on the side that runs the migration.
 *
 * @module
 */
import { DomainError } from "./errors.ts";
import type { Capabilities } from "./options.ts";
import type { MigrationStatus } from "./state_machine.ts";

/** What the checks read and whom they tell. */
export interface SwitchoverSides {
  capabilities: Capabilities;
  /** The newest outgoing migration's status (`none` before any). */
  sourceStatus: MigrationStatus;
  outgoing: { startPostcopy(): void; continue(): void; pause(): boolean };
  incoming: { pause(): boolean };
}

/** migrate-start-postcopy: the seed's checks, then the flag the source's loop reads. */
export function startPostcopy(s: SwitchoverSides): void {
  if (!s.capabilities["postcopy-ram"]) {
    throw new DomainError(
      "wrong-state",
      "Enable postcopy with migrate_set_capability before the start of migration",
    );
  }
  if (s.sourceStatus === "none") {
    throw new DomainError(
      "wrong-state",
      "Postcopy must be started after migration has been started",
    );
  }
  s.outgoing.startPostcopy();
}

/**
 * migrate-continue: succeeds when the status is the one named (`none` included, with no
 * migration at all), releasing a migration paused in pre-switchover; as in the seed, a
 * continue in any other matching state changes nothing.
 */
export function continueMigration(s: SwitchoverSides, state: MigrationStatus): void {
  if (s.sourceStatus !== state) {
    throw new DomainError("wrong-state", `Migration not in expected state: ${s.sourceStatus}`);
  }
  s.outgoing.continue();
}

/** migrate-pause: only in postcopy-active, on either side. */
export function pauseMigration(s: SwitchoverSides): void {
  if (!s.outgoing.pause() && !s.incoming.pause()) {
    throw new DomainError(
      "wrong-state",
      "migrate-pause is currently only supported during postcopy-active state",
    );
  }
}
