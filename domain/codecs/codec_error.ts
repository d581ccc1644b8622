/**
 * The error every page decoder (XBZRLE, zlib) and decompression pool throws.
 *
 * @module
 */
import { WireError } from "../wire/wire_error.ts";

/**
 * A malformed encoded page: a bad XBZRLE delta or corrupt compressed data. It extends
 * `WireError` because an encoded page is part of the migration stream, so whoever stops a
 * migration on a bad stream stops it on a bad page too; its message names what was wrong
 * (it becomes the migration's `error-desc`).
 */
export class CodecError extends WireError {
  /** Creates a codec error with a user-facing message. */
  constructor(message: string) {
    super(message);
    this.name = "CodecError";
  }
}
