/**
 * `--global migration.PROPERTY=VALUE`: the seed's migration_properties (lines 3168-3236),
 * mapped onto the option tables and checked as migration_object_check does at start.
 *
 * @module
 */
import { DomainError } from "./errors.ts";
import { mergeCapabilities, mergeParameters } from "./option_checks.ts";
import {
  CAPABILITIES,
  type Capabilities,
  CAPABILITY_NAMES,
  type CapabilityDef,
  DEFAULT_CAPABILITIES,
  DEFAULT_PARAMETERS,
  PARAMETER_NAMES,
  PARAMETERS,
  type Parameters,
} from "./options.ts";

/** The seed's non-option globals and their defaults. */
export const GLOBAL_DEFAULTS = {
  "store-global-state": true,
  "only-migratable": false,
  "send-configuration": true,
  "send-section-footer": true,
  "decompress-error-check": true,
};

/** Everything `--global` can set. */
export interface Globals {
  flags: typeof GLOBAL_DEFAULTS;
  parameters: Parameters;
  capabilities: Capabilities;
}

function parseBool(prop: string, v: string): boolean {
  if (["on", "true", "yes"].includes(v)) return true;
  if (["off", "false", "no"].includes(v)) return false;
  throw new DomainError("invalid-value", `Property 'migration.${prop}' doesn't take value '${v}'`);
}

/** Applies `migration.PROP=VALUE` settings in order; throws with the seed's message on any bad one. */
export function parseGlobals(settings: readonly string[]): Globals {
  const flags = { ...GLOBAL_DEFAULTS };
  const params: Record<string, unknown> = {};
  const caps: Partial<Capabilities> = {};
  for (const s of settings) {
    const m = /^migration\.([a-z0-9-]+)=(.*)$/.exec(s);
    if (!m) {
      throw new DomainError(
        "invalid-value",
        `Invalid --global '${s}': expected migration.PROPERTY=VALUE`,
      );
    }
    const [, prop, value] = m;
    const param = PARAMETER_NAMES.find((n) =>
      (PARAMETERS[n] as { global?: string }).global === prop
    );
    const cap = CAPABILITY_NAMES.find((n) => (CAPABILITIES[n] as CapabilityDef).global === prop);
    if (prop in flags) {
      flags[prop as keyof typeof flags] = parseBool(prop, value);
    } else if (param) {
      const def = PARAMETERS[param];
      if (def.type === "boolean") params[param] = parseBool(prop, value);
      else if (def.type === "string") params[param] = value;
      else if (/^\d+$/.test(value)) {
        params[param] = def.type === "size" ? BigInt(value) : Number(value);
      } else {throw new DomainError(
          "invalid-value",
          `Property 'migration.${prop}' doesn't take value '${value}'`,
        );}
    } else if (cap) {
      caps[cap] = parseBool(prop, value);
    } else {
      throw new DomainError("invalid-value", `Property 'migration.${prop}' not found`);
    }
  }
  return {
    flags,
    parameters: mergeParameters(DEFAULT_PARAMETERS, params),
    capabilities: mergeCapabilities(DEFAULT_CAPABILITIES, caps),
  };
}
