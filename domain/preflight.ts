/**
 * The checks `migrate` runs, as pure functions that report every problem in the seed's
 * order: {@link prepareProblems} (the seed's migrate_prepare: a refusal, nothing changes)
 * and {@link startProblems} (what the seed finds only after migrate_init set `setup`: the
 * URI and the channel; such a migration is recorded and fails). A real `migrate` stops at
 * the first; a dry run reports them all.
 *
 * @module
 */
import { parseMigrationUri } from "../adapters/channels/uri.ts";
import type { Blocker } from "./blockers.ts";
import { DomainError, MIGRATION_ACTIVE } from "./errors.ts";
import { execProblem } from "./exec_policy.ts";
import { mergeCapabilities } from "./option_checks.ts";
import type { Capabilities, Parameters } from "./options.ts";
import { isSetupOrActive, type MigrationStatus } from "./state_machine.ts";
import type { MigrationPolicy } from "./policy.ts";

/** The body of `POST /migrations` (QMP migrate, plus Ferry's policy). */
export interface MigrateRequest {
  uri: string;
  resume?: boolean;
  blk?: boolean;
  inc?: boolean;
  detach?: boolean;
  "x-policy"?: MigrationPolicy;
}

/** What the checks look at. */
export interface PreflightState {
  /** The outgoing migration's status (`none` before any). */
  status: MigrationStatus;
  /** The guest's runstate. */
  runstate: string;
  /** The blocker `migrate` would report, if any. */
  blocker: Blocker | null;
  capabilities: Capabilities;
  parameters: Parameters;
  /** `--allow-exec`: whether `exec:` URIs are taken. */
  allowExec: boolean;
  /** The guest is a WebAssembly program (`--guest wasm:`). */
  wasmGuest?: boolean;
  /** This agent's incoming migration is in COLO: its guest is a primary's standby. */
  coloSecondary?: boolean;
}

/** Why a COLO secondary does not migrate its guest (beyond QEMU: that would be a third copy). */
export const COLO_SECONDARY =
  "This agent is a COLO secondary: its guest is the primary's standby and runs on alone only " +
  "after a failover (POST /colo/lost-heartbeat)";

/** Why a WebAssembly guest cannot be migrated with postcopy. */
export const WASM_POSTCOPY =
  "Postcopy is not supported for a WebAssembly guest: its loads are not instrumented to " +
  "wait for pages that have not arrived";

/** Several problems at once (a dry run); code, class and status are the first one's. */
export class DomainErrors extends DomainError {
  readonly errors: readonly DomainError[];

  /** Wraps a non-empty list of problems; the detail joins their texts. */
  constructor(errors: readonly DomainError[]) {
    super(errors[0].code, errors.map((e) => e.message).join("; "), errors[0].errorClass);
    this.name = "DomainErrors";
    this.errors = errors;
  }
}

function resumeProblems(req: MigrateRequest, s: PreflightState): DomainError[] {
  const exec = execProblem(req.uri, "outgoing", s.allowExec);
  if (exec) return [exec];
  if (s.status !== "postcopy-paused") {
    return [new DomainError("wrong-state", "Cannot resume if there is no paused migration")];
  }
  if (s.capabilities["release-ram"]) {
    return [
      new DomainError(
        "incompatible",
        "Postcopy recovery cannot work when release-ram capability is set",
      ),
    ];
  }
  // A resume is no new migration: a URI the seed cannot use is an error and nothing else
  // (its SETUP -> FAILED compare-and-set misses the paused state).
  try {
    parseMigrationUri(req.uri, "outgoing");
  } catch (e) {
    return [new DomainError("invalid-value", (e as Error).message)];
  }
  return [];
}

/**
 * The seed's migrate_prepare (and Ferry's own request checks): every reason `migrate` would
 * refuse `req` in state `s` before a migration exists, in the seed's order.
 */
export function prepareProblems(req: MigrateRequest, s: PreflightState): DomainError[] {
  if (req.resume) return resumeProblems(req, s);
  const problems: DomainError[] = [];
  if (isSetupOrActive(s.status) || s.status === "cancelling" || s.status === "colo") {
    problems.push(new DomainError("active", MIGRATION_ACTIVE));
  }
  if (s.runstate === "inmigrate") {
    problems.push(new DomainError("wrong-state", "Guest is waiting for an incoming migration"));
  }
  if (s.coloSecondary) problems.push(new DomainError("wrong-state", COLO_SECONDARY));
  if (s.wasmGuest && s.capabilities["postcopy-ram"]) {
    problems.push(new DomainError("wrong-state", WASM_POSTCOPY));
  }
  if (s.runstate === "postmigrate") {
    // QEMU's later migrate_prepare: the guest already runs on the destination; sending this
    // stale copy again would make a second one (`cont` first, as in QEMU, to allow it).
    problems.push(
      new DomainError(
        "wrong-state",
        "Can't migrate the vm that was paused due to previous migration",
      ),
    );
  }
  if (s.blocker) problems.push(new DomainError("blocked", s.blocker.reason));
  if ((req.blk || req.inc) && (s.capabilities.block || s.parameters["block-incremental"])) {
    problems.push(
      new DomainError(
        "incompatible",
        "Command options are incompatible with current migration capabilities",
      ),
    );
  }
  try {
    // migrate_set_block_enabled(true) checks the capabilities with `block` on.
    mergeCapabilities(s.capabilities, req.blk || req.inc ? { block: true } : {});
  } catch (e) {
    problems.push(e as DomainError);
  }
  const policy = req["x-policy"];
  if (policy?.actions.includes("postcopy") && !s.capabilities["postcopy-ram"]) {
    problems.push(
      new DomainError(
        "incompatible",
        "x-policy: the postcopy action needs the postcopy-ram capability",
      ),
    );
  }
  // Ferry's permission check: refused before anything changes, like a blocker.
  const exec = execProblem(req.uri, "outgoing", s.allowExec);
  if (exec) problems.push(exec);
  return problems;
}

/**
 * What the seed finds wrong only once the migration is in `setup` (qmp_migrate after
 * migrate_prepare, and migrate_fd_connect): an unknown scheme or unusable address, and a
 * return path that the channel cannot carry. A migration with one of these fails.
 */
export function startProblems(uri: string, capabilities: Capabilities): DomainError[] {
  try {
    const u = parseMigrationUri(uri, "outgoing");
    const oneWay = u.kind === "exec" || u.kind === "file";
    if (capabilities["x-colo"] && oneWay) {
      // COLO's checkpoints are an exchange (QEMU's COLO opens the return path too).
      return [
        new DomainError(
          "incompatible",
          `COLO needs a return path: ${u.kind}: channels carry one direction only`,
        ),
      ];
    }
    const needsReturnPath = capabilities["postcopy-ram"] || capabilities["return-path"];
    if (needsReturnPath && oneWay) {
      return [
        new DomainError(
          "incompatible",
          `Unable to open return-path for postcopy: ${u.kind}: channels carry one direction only`,
        ),
      ];
    }
    return [];
  } catch (e) {
    return [new DomainError("invalid-value", (e as Error).message)];
  }
}

/** Every problem of `req` in state `s` (a dry run): the refusals, then the start failures. */
export function migrateProblems(req: MigrateRequest, s: PreflightState): DomainError[] {
  const refused = prepareProblems(req, s);
  return req.resume ? refused : [...refused, ...startProblems(req.uri, s.capabilities)];
}
