/**
 * Names and sizes a prepared guest module shares with the vCPU that runs it (kept apart from
 * wasm_prepare.ts so the vCPU Worker does not load binaryen).
 *
 * @module
 */

/** Loop heads and function entries between two calls of `ferry.check`. */
export const CHECK_BUDGET = 20000;
/** Bytes of the secondary memory asyncify unwinds the stack into. */
export const ASYNCIFY_BYTES = 1 << 20;
/** WASI calls that may block, and so may unwind. */
export const BLOCKING_WASI = ["fd_read", "poll_oneoff"];
/** Export name of the asyncify memory. */
export const ASYNCIFY_MEMORY_EXPORT = "ferry_asyncify_memory";
/** Prefix of the exported mutable globals. */
export const GLOBAL_EXPORT_PREFIX = "ferry_global_";
