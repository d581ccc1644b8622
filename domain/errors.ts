/**
 * Domain errors: each carries a stable code (mapped to an HTTP status in one table in
 * `routes/problem.ts`), the user-facing detail (the seed's own text where it has one),
 * and the QMP error class.
 *
 * @module
 */

/** Stable error codes; the HTTP layer maps each to one status. */
export type ErrorCode =
  | "invalid-value" // a value out of range or malformed: 400
  | "incompatible" // capabilities that cannot be combined: 400
  | "unsupported" // a feature Ferry does not provide: 400
  | "active" // a migration is in progress: 409
  | "wrong-state" // the command does not fit the current state: 409
  | "blocked" // a migration blocker is registered: 409
  | "disabled" // a feature the agent was started without (exec: needs --allow-exec): 409
  | "not-found" // no such resource: 404
  | "stale" // If-Match did not match: 412
  | "mismatch" // an Idempotency-Key reused with a different request: 422
  | "internal"; // a bug: 500

/** QMP error classes as QEMU reports them. */
export type ErrorClass = "GenericError" | "DeviceNotFound" | "CommandNotFound";

/** An error a domain call reports to its caller; nothing was changed. */
export class DomainError extends Error {
  readonly code: ErrorCode;
  readonly errorClass: ErrorClass;

  /** Creates an error with a stable code and the user-facing detail text. */
  constructor(code: ErrorCode, detail: string, errorClass: ErrorClass = "GenericError") {
    super(detail);
    this.name = "DomainError";
    this.code = code;
    this.errorClass = errorClass;
  }
}

/** The seed's QERR_MIGRATION_ACTIVE text. */
export const MIGRATION_ACTIVE = "There's a migration process in progress";

/**
 * A migrate that got past the seed's migrate_prepare (status `setup`) and failed there: the
 * migration is recorded as `failed` with this error, and the caller hears the error too.
 */
export class MigrationFailed extends DomainError {
  /** The failed migration's resource id. */
  readonly migrationId: string;

  /** Wraps the error the migration failed with. */
  constructor(cause: DomainError, migrationId: string) {
    super(cause.code, cause.message, cause.errorClass);
    this.name = "MigrationFailed";
    this.migrationId = migrationId;
  }
}
