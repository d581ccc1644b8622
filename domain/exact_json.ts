/**
 * JSON with exact integers. QMP's sizes are unsigned 64-bit integers, and `JSON.parse`
 * rounds an integer beyond 2^53 to the nearest double. {@link parseJsonExact} reads such an
 * integer literal as a bigint from its source text (the reviver's source access); and
 * {@link stringifyJsonExact} writes a bigint as a JSON integer (`JSON.rawJSON`). Every other
 * value is what `JSON.parse` and `JSON.stringify` make of it. The one place either is done.
 *
 * @module
 */

/** The third argument V8 gives a JSON.parse reviver (TC39 "JSON.parse source text access"). */
interface ReviverContext {
  source?: string;
}

type ExactReviver = (this: unknown, key: string, value: unknown, ctx?: ReviverContext) => unknown;

const INTEGER = /^-?\d+$/;

/** `JSON.parse`, but an integer literal that a double cannot hold exactly becomes a bigint. */
export function parseJsonExact(text: string): unknown {
  const reviver: ExactReviver = (_key, value, ctx) => {
    if (typeof value !== "number" || Number.isSafeInteger(value)) return value;
    const source = ctx?.source;
    return source !== undefined && INTEGER.test(source) ? BigInt(source) : value;
  };
  return JSON.parse(text, reviver as (key: string, value: unknown) => unknown);
}

/** `JSON.stringify`, with bigints written as JSON integers, digit for digit. */
export function stringifyJsonExact(value: unknown, indent?: number): string {
  return JSON.stringify(
    value,
    (_key, v) => typeof v === "bigint" ? rawJson(v.toString()) : v,
    indent,
  );
}

/**
 * `value`'s members with each bigint replaced by a raw JSON integer, so that any
 * `JSON.stringify` (a framework's too) writes it digit for digit. Typed as JSON numbers.
 */
export function exactValues<T extends Record<string, unknown>>(
  value: T,
): { [K in keyof T]: T[K] extends bigint ? number : T[K] } {
  return Object.fromEntries(
    Object.entries(value).map(([k, v]) => [k, typeof v === "bigint" ? rawJson(v.toString()) : v]),
  ) as { [K in keyof T]: T[K] extends bigint ? number : T[K] };
}

/** `JSON.rawJSON` (ES2025; not in every TypeScript lib yet). */
function rawJson(text: string): unknown {
  return (JSON as unknown as { rawJSON(text: string): unknown }).rawJSON(text);
}
