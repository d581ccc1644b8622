/**
 * The seed's checks over the option tables: `migrate_params_check` on the merged result
 * (`migrate_params_test_apply`), and `migrate_caps_check` over the INCOMPATIBLE table.
 * Each returns the new full map or throws a DomainError; nothing is changed on error.
 *
 * @module
 */
import { DomainError } from "./errors.ts";
import {
  CAPABILITIES,
  type Capabilities,
  CAPABILITY_NAMES,
  type CapabilityDef,
  type CapabilityName,
  INCOMPATIBLE,
  PARAMETER_NAMES,
  type Parameters,
  parameterValid,
  rangeError,
  SIZE_PARAMETER_NAMES,
  sizeTypeError,
  toSize,
} from "./options.ts";

/** Runs every range check of the seed on a full parameter set, in the seed's order. */
export function checkParameters(params: Parameters): void {
  for (const name of PARAMETER_NAMES) {
    if (!parameterValid(name, params[name], params)) {
      throw new DomainError("invalid-value", rangeError(name));
    }
  }
}

/**
 * Merges a validated patch over `current` (null tls names become ""; a size is taken as
 * QMP takes it, see toSize), checks, returns the result.
 */
export function mergeParameters(
  current: Parameters,
  patch: Partial<Record<keyof Parameters, unknown>>,
): Parameters {
  const next = { ...current } as Record<string, unknown>;
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) continue;
    if ((SIZE_PARAMETER_NAMES as string[]).includes(k)) {
      const size = toSize(v);
      if (size === null) throw new DomainError("invalid-value", sizeTypeError(k));
      next[k] = size;
    } else next[k] = v === null ? "" : v;
  }
  checkParameters(next as Parameters);
  return next as Parameters;
}

/** The seed's migrate_caps_check over the data tables; returns the merged map. */
export function mergeCapabilities(
  current: Capabilities,
  patch: Partial<Record<CapabilityName, boolean>>,
): Capabilities {
  const next = { ...current };
  for (const name of CAPABILITY_NAMES) {
    const v = patch[name];
    if (v !== undefined) next[name] = v;
  }
  for (const rule of INCOMPATIBLE) {
    if (rule.all.every((n) => next[n])) throw new DomainError("incompatible", rule.message);
  }
  for (const name of CAPABILITY_NAMES) {
    const def: CapabilityDef = CAPABILITIES[name];
    const why = next[name] && !current[name] && (def.unsupported ?? def.unavailable?.());
    if (why) {
      throw new DomainError(
        "unsupported",
        `Capability '${name}' cannot be enabled: ${why} (a Ferry limitation; QEMU accepts it)`,
      );
    }
  }
  return next;
}
