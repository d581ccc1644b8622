/**
 * The guest's runstates (QEMU's names) for the layers above the domain: the list lives with
 * the vCPU control block, which gives each its numeric code.
 *
 * @module
 */
export { RUN_STATES, type RunState } from "../adapters/memory/vcpu_ctl.ts";
