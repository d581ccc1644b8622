/**
 * The seed's block options around a migrate: `blk` / `inc` turn the `block` capability (and
 * with `inc` the `block-incremental` parameter) on for that migration (migrate_prepare), and
 * they are turned off again when it ends (block_cleanup_parameters, must_remove_block_options).
 *
 * @module
 */
import type { Capabilities, Parameters } from "./options.ts";

/** Capabilities and parameters together. */
export interface OptionSet {
  capabilities: Capabilities;
  parameters: Parameters;
}

/** The options with blk/inc applied (unchanged when neither is asked for). */
export function withBlockOptions(o: OptionSet, req: { blk?: boolean; inc?: boolean }): OptionSet {
  if (!req.blk && !req.inc) return o;
  return {
    capabilities: { ...o.capabilities, block: true },
    parameters: req.inc ? { ...o.parameters, "block-incremental": true } : o.parameters,
  };
}

/** The options with block and block-incremental off (setting them off never fails). */
export function withoutBlockOptions(o: OptionSet): OptionSet {
  return {
    capabilities: { ...o.capabilities, block: false },
    parameters: { ...o.parameters, "block-incremental": false },
  };
}
