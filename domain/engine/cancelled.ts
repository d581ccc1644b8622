/**
 * The outgoing migration was cancelled (migrate_cancel, or the status moved on without
 * it): the run unwinds without reporting an error of its own.
 *
 * @module
 */

/** Thrown inside the source's run when it was cancelled. */
export class Cancelled extends Error {
  constructor() {
    super("cancelled");
  }
}
