/**
 * Entity tags for the option maps: a strong ETag is a hash of the map's JSON, so equal
 * maps always have equal tags and any change gives a new one.
 *
 * @module
 */
import { DomainError } from "../domain/errors.ts";
import { stringifyJsonExact } from "../domain/exact_json.ts";

/**
 * The strong ETag of a JSON value: a 64-bit hash of its JSON text and the text's length. An
 * ETag only has to change when the map does (anyone who may send If-Match may read the tag),
 * so no cryptographic hash is needed; SHA-256 here cost every agent start ~25 ms of CPU
 * loading node:crypto.
 */
export function etagOf(value: unknown): string {
  const text = stringifyJsonExact(value);
  return `"${hash64(text)}-${text.length.toString(36)}"`;
}

/** Two 32-bit multiply-xor lanes over the UTF-16 code units, mixed at the end: 16 hex digits. */
function hash64(text: string): string {
  let a = 0x811c9dc5 ^ text.length;
  let b = 0x27d4eb2f ^ text.length;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    a = Math.imul(a ^ c, 0x9e3779b1);
    b = Math.imul(b ^ c, 0x85ebca77);
  }
  a = Math.imul(a ^ (a >>> 16), 0x7feb352d) ^ Math.imul(b ^ (b >>> 15), 0x846ca68b);
  b = Math.imul(b ^ (b >>> 16), 0x7feb352d) ^ Math.imul(a ^ (a >>> 15), 0x846ca68b);
  return (a >>> 0).toString(16).padStart(8, "0") + (b >>> 0).toString(16).padStart(8, "0");
}

/**
 * RFC 9110 If-Match with strong comparison: true when the header is absent, is `*`, or
 * lists `etag`. Weak tags (`W/"..."`) never match.
 */
export function ifMatchHolds(header: string | undefined, etag: string): boolean {
  if (header === undefined) return true;
  return header.split(",").map((t) => t.trim()).some((t) => t === "*" || t === etag);
}

/**
 * Refuses a change whose `If-Match` does not hold for the current `value` (a `stale`
 * DomainError, 412, nothing changed).
 */
export function requireIfMatch(ifMatch: string | undefined, value: unknown, what: string): void {
  const etag = etagOf(value);
  if (!ifMatchHolds(ifMatch, etag)) {
    throw new DomainError("stale", `If-Match does not match the current ${what} (ETag ${etag})`);
  }
}
