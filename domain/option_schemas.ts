/**
 * Zod schemas derived from the option tables in `options.ts`: the full maps that
 * GET returns and the merge-patch bodies that PATCH accepts. The OpenAPI document is
 * generated from these, so it can never disagree with validation.
 *
 * @module
 */
import { z } from "zod";
import {
  CAPABILITIES,
  CAPABILITY_NAMES,
  type CapabilityDef,
  PARAMETER_NAMES,
  PARAMETERS,
  SIZE_MAX,
} from "./options.ts";

function fieldsOf<T>(names: readonly string[], field: (name: string) => T): Record<string, T> {
  return Object.fromEntries(names.map((n) => [n, field(n)]));
}

const param = (n: string) => PARAMETERS[n as keyof typeof PARAMETERS];

/**
 * A size: a JSON integer of up to 64 bits, read exactly (a bigint beyond 2^53, see
 * exact_json.ts); its range and QMP's wrapping of negatives are the domain's (toSize).
 */
function sizeType(): z.ZodType {
  return z.union([z.int(), z.bigint()]).meta({
    type: "integer",
    format: "uint64",
  } as Record<string, unknown>);
}

/** The JSON type of one parameter (ranges are checked with the seed's texts separately). */
function paramType(n: string): z.ZodType {
  const def: { type: string; min?: number; max?: number } = param(n);
  if (def.type === "boolean") return z.boolean();
  if (def.type === "string") return z.string().max(255);
  if (def.type === "size") return sizeType();
  // An integer literal too long for a double arrives as a bigint (exact_json.ts): past
  // any of these ranges, so it gets the seed's range text like any other.
  return z.preprocess(
    (v) => typeof v === "bigint" ? Number(v) : v,
    z.number().int().min(def.min!).max(def.max!),
  );
}

/** What a size member's description adds: the exact range, and QMP's negative values. */
function sizeNote(n: string): string {
  return param(n).type === "size"
    ? ` An exact integer up to ${SIZE_MAX} (2^64 − 1); a negative −n is taken as 2^64 − n, ` +
      "as QMP does."
    : "";
}
const cap = (n: string) => CAPABILITIES[n as keyof typeof CAPABILITIES];
const capDescription = (n: string) => {
  const c: CapabilityDef = cap(n);
  return c.unsupported ? `${c.description} (Not available: ${c.unsupported}.)` : c.description;
};

/** `GET /capabilities`: every capability and its state. */
export const CapabilitiesSchema = z.object(
  fieldsOf(CAPABILITY_NAMES, (n) => z.boolean().meta({ description: capDescription(n) })),
).strict().meta({ id: "MigrationCapabilities" });

/** `PATCH /capabilities`: a merge patch; members left out keep their state. */
export const CapabilitiesPatchSchema = z.object(
  fieldsOf(
    CAPABILITY_NAMES,
    (n) => z.boolean().optional().meta({ description: capDescription(n) }),
  ),
).strict().meta({ id: "MigrationCapabilitiesPatch" });

/** `GET /parameters`: every parameter and its value. */
export const ParametersSchema = z.object(
  fieldsOf(
    PARAMETER_NAMES,
    (n) =>
      paramType(n).meta({
        description: param(n).description + sizeNote(n),
        default: defaultOf(n),
      }),
  ),
).strict().meta({ id: "MigrationParameters" });

/** `PATCH /parameters`: a merge patch; `null` for tls-creds / tls-hostname means "". */
export const ParametersPatchSchema = z.object(
  fieldsOf(PARAMETER_NAMES, (n) => {
    const s = n === "tls-creds" || n === "tls-hostname" ? paramType(n).nullable() : paramType(n);
    return s.optional().meta({ description: param(n).description + sizeNote(n) });
  }),
).strict().meta({ id: "MigrationParametersPatch" });

/** A default as the document shows it (a size as a number: the defaults are small). */
function defaultOf(n: string): number | boolean | string {
  const d = param(n).default;
  return typeof d === "bigint" ? Number(d) : d;
}
