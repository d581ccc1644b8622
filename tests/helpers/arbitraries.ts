/**
 * Test helper: fast-check arbitraries shared by the property tests.
 *
 * @module
 */
import fc from "fast-check";

/**
 * Strings of 1..`maxLength` Unicode scalar values (any code point but a lone surrogate) whose
 * UTF-8 form fits `maxBytes`: what a name on the wire can hold. Built from code points, because
 * `fc.string({ unit: "binary" })` costs about 2 CPU-seconds to construct under `deno test`
 * (measured 2026-12-06), once per test module that makes one.
 */
export function utf8Names(maxLength: number, maxBytes = 255): fc.Arbitrary<string> {
  const scalar = fc.oneof(
    fc.integer({ min: 0, max: 0xd7ff }),
    fc.integer({ min: 0xe000, max: 0x10ffff }),
  ).map((c) => String.fromCodePoint(c));
  return fc.array(scalar, { minLength: 1, maxLength }).map((a) => a.join("")).filter((s) =>
    new TextEncoder().encode(s).length <= maxBytes
  );
}
