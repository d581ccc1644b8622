/**
 * The error every wire decoder and validator throws.
 *
 * @module
 */

/**
 * What went wrong with a stream: `protocol`, bytes that break the format (the attempt fails);
 * `truncated`, the stream ended before it was complete (the link broke: a postcopy that runs
 * on the destination pauses instead). Decisions read this code, never the message.
 */
export type WireErrorCode = "protocol" | "truncated";

/**
 * A malformed, truncated or incompatible migration stream (or return-path message).
 * Its message is shown to users as the migration's `error-desc`, so it names what was
 * wrong in plain words (e.g. `unknown frame type 0x2a`).
 */
export class WireError extends Error {
  /** See {@link WireErrorCode}. */
  readonly code: WireErrorCode;

  /** Creates a wire error with a user-facing message (a `protocol` error by default). */
  constructor(message: string, code: WireErrorCode = "protocol") {
    super(message);
    this.name = "WireError";
    this.code = code;
  }
}
