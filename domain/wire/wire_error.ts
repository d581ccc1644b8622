/**
 * The error every wire decoder and validator throws.
 *
 * @module
 */

/**
 * A malformed, truncated or incompatible migration stream (or return-path message).
 * Its message is shown to users as the migration's `error-desc`, so it names what was
 * wrong in plain words (e.g. `unknown frame type 0x2a`).
 */
export class WireError extends Error {
  /** Creates a wire error with a user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "WireError";
  }
}
