/**
 * The destination's reason (a Ferry extension of the return path, beyond QEMU): before it
 * closes a stream it refuses or fails, the destination sends its error text back, so the
 * source can say why (`destination refused: Configuration mismatch: …`) instead of
 * "Broken pipe". Same framing as every return-path message (`u16 type, u16 length, data`),
 * with a type far from QEMU's table; the data is the text in UTF-8, 1..512 bytes.
 *
 * @module
 */

import { be16 } from "./frames.ts";
import { RP_HEADER_SIZE, RP_MAX_LEN } from "./return_path.ts";
import { WireError } from "./wire_error.ts";

/** Return-path type of the destination's reason (outside QEMU's `mig_rp_message_type`). */
export const RP_REASON = 0xfe01;

const utf8Enc = new TextEncoder();
const utf8Dec = new TextDecoder("utf-8", { fatal: true });

/** The longest prefix of `text` whose UTF-8 fits in `max` bytes (never splits a character). */
function fitUtf8(text: string, max: number): Uint8Array {
  const all = utf8Enc.encode(text);
  if (all.length <= max) return all;
  let end = max;
  while (end > 0 && (all[end] & 0xc0) === 0x80) end--; // back to a character's first byte
  return all.subarray(0, end);
}

/**
 * Encodes the reason message; a text longer than 512 bytes is cut at a character boundary,
 * an empty one is sent as "unknown error".
 */
export function encodeRpReason(text: string): Uint8Array<ArrayBuffer> {
  const data = fitUtf8(text.length > 0 ? text : "unknown error", RP_MAX_LEN);
  const b = new Uint8Array(RP_HEADER_SIZE + data.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, RP_REASON);
  v.setUint16(2, data.length);
  b.set(data, RP_HEADER_SIZE);
  return b;
}

/** True when the return-path header at `b[off]` announces a reason message. */
export function isRpReason(b: Uint8Array, off = 0): boolean {
  return b.length - off >= 2 && be16(b, off) === RP_REASON;
}

/** Checks a reason message's data length (1..512); throws {@link WireError}. */
export function checkRpReasonLength(length: number): void {
  if (length < 1 || length > RP_MAX_LEN) {
    throw new WireError(
      `RP: destination's reason with length ${length} expecting 1 to ${RP_MAX_LEN}`,
    );
  }
}

/** Decodes a reason message's data (the bytes after the header). */
export function decodeRpReason(data: Uint8Array): string {
  checkRpReasonLength(data.length);
  try {
    return utf8Dec.decode(data);
  } catch {
    throw new WireError("RP: destination's reason is not valid UTF-8");
  }
}
