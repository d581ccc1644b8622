/**
 * `Idempotency-Key` for `POST /migrations`: the first accepted request under a key is
 * remembered (bounded, oldest forgotten first); a retry with the same key and the same
 * request gets the remembered result and starts nothing. Failed attempts are not
 * remembered (they changed nothing), so a retry after an error runs again.
 *
 * @module
 */
import { DomainError } from "../domain/errors.ts";

/** How many keys are remembered. */
export const IDEMPOTENCY_CAPACITY = 256;

interface Entry<T> {
  fingerprint: string;
  value: T;
}

/** A canonical text for a JSON-like request: object members sorted by name. */
export function fingerprintOf(request: unknown): string {
  return JSON.stringify(
    request,
    (_k, v) =>
      v && typeof v === "object" && !Array.isArray(v)
        ? Object.fromEntries(Object.entries(v).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
        : v,
  );
}

/** Remembers the result of the first successful call per key. */
export class IdempotencyStore<T> {
  readonly #entries = new Map<string, Entry<T>>();
  readonly #capacity: number;

  /** Keeps at most `capacity` keys. */
  constructor(capacity = IDEMPOTENCY_CAPACITY) {
    this.#capacity = capacity;
  }

  /** Number of remembered keys. */
  get size(): number {
    return this.#entries.size;
  }

  /**
   * Runs `fn` unless `key` was seen: then returns the remembered value (`replayed`), or
   * throws a `mismatch` DomainError when the key came with a different request.
   */
  run(key: string, request: unknown, fn: () => T): { value: T; replayed: boolean } {
    const fingerprint = fingerprintOf(request);
    const seen = this.#entries.get(key);
    if (seen) {
      if (seen.fingerprint !== fingerprint) {
        throw new DomainError(
          "mismatch",
          `Idempotency-Key '${key}' was already used with a different request body`,
        );
      }
      return { value: seen.value, replayed: true };
    }
    const value = fn();
    this.#entries.set(key, { fingerprint, value });
    if (this.#entries.size > this.#capacity) {
      this.#entries.delete(this.#entries.keys().next().value!);
    }
    return { value, replayed: false };
  }
}
