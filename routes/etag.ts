/**
 * Entity tags for the option maps: a strong ETag is a hash of the map's JSON, so equal
 * maps always have equal tags and any change gives a new one.
 *
 * @module
 */
import { createHash } from "node:crypto";
import { DomainError } from "../domain/errors.ts";
import { stringifyJsonExact } from "../domain/exact_json.ts";

/** The strong ETag of a JSON value (a quoted SHA-256 prefix of its JSON text). */
export function etagOf(value: unknown): string {
  const digest = createHash("sha256").update(stringifyJsonExact(value)).digest("base64url");
  return `"${digest.slice(0, 27)}"`;
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
