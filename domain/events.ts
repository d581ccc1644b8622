/**
 * Every event the agent publishes on its bus, by name, with the type of its `data`. The bus
 * of an agent only takes these names; the routes give each a schema in `openapi.yaml`
 * (`x-events` of `GET /events`), checked complete at compile time, and a test checks that
 * every name published anywhere in the code is documented there.
 *
 * @module
 */
import type { Convergence } from "./convergence.ts";
import type { MigrationInfo } from "./migration_info.ts";
import type { PolicyFiring } from "./policy.ts";
import type { MigrationStatus, Side } from "./state_machine.ts";

/** Event name → the type of its data. */
export interface FerryEventMap {
  /** The seed's MIGRATION event, on every status change, plus the migration's id. */
  MIGRATION: { status: MigrationStatus; side: Side; id: string };
  /** The seed's MIGRATION_PASS event, at each dirty-log sync. */
  MIGRATION_PASS: { pass: number };
  /** Ferry: the convergence verdict of an outgoing precopy changed. */
  MIGRATION_CONVERGENCE: { id: string } & Convergence;
  /** Ferry: the migration's x-policy fired and took an action. */
  MIGRATION_POLICY: { id: string; note: string } & PolicyFiring;
  /** QEMU's COLO_EXIT: this agent left COLO (mode it had, why). */
  COLO_EXIT: { mode: "primary" | "secondary"; reason: "request" | "error" };
  /** Ferry: a running migration's MigrationInfo, about every 250 ms. */
  progress: MigrationInfo;
}

/** The name of an event the agent publishes. */
export type FerryEventName = keyof FerryEventMap;
