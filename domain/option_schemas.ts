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
  DEFAULT_PARAMETERS,
  PARAMETER_NAMES,
  PARAMETERS,
} from "./options.ts";

function fieldsOf<T>(names: readonly string[], field: (name: string) => T): Record<string, T> {
  return Object.fromEntries(names.map((n) => [n, field(n)]));
}

const param = (n: string) => PARAMETERS[n as keyof typeof PARAMETERS];

/** The JSON type of one parameter (ranges are checked with the seed's texts separately). */
function paramType(n: string): z.ZodType {
  const def: { type: string; min?: number; max?: number } = param(n);
  if (def.type === "boolean") return z.boolean();
  if (def.type === "string") return z.string().max(255);
  return z.number().int().min(def.min!).max(def.max!);
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
    (n) => paramType(n).meta({ description: param(n).description, default: param(n).default }),
  ),
).strict().meta({ id: "MigrationParameters" });

/** `PATCH /parameters`: a merge patch; `null` for tls-creds / tls-hostname means "". */
export const ParametersPatchSchema = z.object(
  fieldsOf(PARAMETER_NAMES, (n) => {
    const s = n === "tls-creds" || n === "tls-hostname" ? paramType(n).nullable() : paramType(n);
    return s.optional().meta({ description: param(n).description });
  }),
).strict().meta({ id: "MigrationParametersPatch" });

/** The defaults, for documentation examples. */
export const PARAMETER_EXAMPLE = DEFAULT_PARAMETERS;
