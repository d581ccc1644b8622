/**
 * Prepares a WASI guest module for Ferry with npm `binaryen` (run once per module and RAM
 * size; the result is cached by hash, wasm_cache.ts):
 *
 * 1. its memory becomes `ferry.memory`, a shared memory of the module's declared size that
 *    grows with memory.grow up to the RAM's size (the cap), and a second shared memory
 *    `ferry.dirty` is the machine's dirty log (one byte per 4 KiB page of the cap);
 * 2. every store marks its page(s) in the dirty log (binaryen's `instrument-memory`, whose
 *    hooks are replaced by small functions of the module and inlined; `memory.copy` and
 *    `memory.fill` are first lowered to loops of stores);
 * 3. every function entry and loop head spends one unit of a budget; when it runs out the
 *    module calls `ferry.check` (binaryen's `log-execution`, hook replaced likewise), so the
 *    vCPU reaches a safe point within a bounded time even in a loop that makes no call;
 * 4. asyncify (stack kept in a secondary memory) lets `ferry.check` and the blocking WASI
 *    calls unwind the running stack there and rewind it, on this or another machine;
 * 5. every mutable global is exported as `ferry_global_<i>` (device state).
 *
 * @module
 */

import binaryen from "binaryen";
import {
  FERRY_MODULE,
  guestMemoryPages,
  importMemories,
  moduleFacts,
  WASI_MODULE,
} from "./wasm_binary.ts";
import {
  ASYNCIFY_BYTES,
  ASYNCIFY_MEMORY_EXPORT,
  BLOCKING_WASI,
  CHECK_BUDGET,
  GLOBAL_EXPORT_PREFIX,
} from "./wasm_prepare_names.ts";

/** The prepared module's bytes and what preparing measured. */
export interface PreparedModule {
  bytes: Uint8Array;
  /** Mutable globals exported, in order (`ferry_global_0` ...). */
  globals: number;
  /** Declared initial memory of the original module, 64 KiB pages. */
  minPages: number;
  prepareMs: number;
}

const T = binaryen;

/** Replaces import `name` by a defined function with the same signature and `body`. */
function define(
  m: binaryen.Module,
  name: string,
  vars: binaryen.Type[],
  body: (params: binaryen.Type[]) => binaryen.ExpressionRef,
): void {
  const ref = m.getFunction(name);
  if (!ref) return;
  const info = binaryen.getFunctionInfo(ref);
  m.removeFunction(name);
  m.addFunction(name, info.params, info.results, vars, body(binaryen.expandType(info.params)));
}

/** The hooks of instrument-memory and log-execution as functions of the module. */
function defineHooks(m: binaryen.Module, dirty: string, budget: string): void {
  for (let i = 0; i < m.getNumFunctions(); i++) {
    const f = binaryen.getFunctionInfo(m.getFunctionByIndex(i));
    if (f.module !== "env") continue;
    const ps = binaryen.expandType(f.params);
    if (f.base === "store_ptr") continue;
    if (f.base === "log_execution") continue;
    // Every other hook (load_ptr, *_val_*, memory_grow_*, array_*_index) returns its last
    // argument unchanged.
    define(m, f.name, [], () => m.local.get(ps.length - 1, ps[ps.length - 1]));
    i = -1; // the function list changed; start over
  }
  // store_ptr(id, bytes, offset, ptr) -> ptr: marks the first and last page the store touches.
  define(m, "store_ptr", [T.i32], () => {
    const ea = () => m.local.get(4, T.i32);
    return m.block(null, [
      m.local.set(4, m.i32.add(m.local.get(3, T.i32), m.local.get(2, T.i32))),
      m.i32.store8(0, 1, m.i32.shr_u(ea(), m.i32.const(12)), m.i32.const(1), dirty),
      m.i32.store8(
        0,
        1,
        m.i32.shr_u(
          m.i32.add(ea(), m.i32.sub(m.local.get(1, T.i32), m.i32.const(1))),
          m.i32.const(12),
        ),
        m.i32.const(1),
        dirty,
      ),
      m.local.get(3, T.i32),
    ], T.i32);
  });
  m.addFunctionImport("ferry_check", FERRY_MODULE, "check", T.none, T.none);
  m.addGlobal(budget, T.i32, true, m.i32.const(CHECK_BUDGET));
  define(m, "log_execution", [], () =>
    m.block(null, [
      m.global.set(budget, m.i32.sub(m.global.get(budget, T.i32), m.i32.const(1))),
      m.if(
        m.i32.lt_s(m.global.get(budget, T.i32), m.i32.const(0)),
        m.block(null, [
          m.global.set(budget, m.i32.const(CHECK_BUDGET)),
          m.call("ferry_check", [], T.none),
        ]),
      ),
    ]));
}

/** The internal names of the two imported memories (guest RAM first). */
function memoryNames(m: binaryen.Module): [string, string] {
  const text = m.emitText();
  const names: string[] = [];
  for (const line of text.split("\n")) {
    const match = /^\s*\(import "ferry" "(memory|dirty)" \(memory \$(\S+)/.exec(line);
    if (match) names.push(match[2]);
    if (names.length === 2) break;
  }
  if (names.length !== 2) throw new Error("wasm prepare: imported memories not found");
  return [names[0], names[1]];
}

/**
 * Prepares `original` for a RAM of `ramBytes` (a multiple of 64 KiB). Throws WasmModuleError
 * for modules Ferry does not run (see moduleFacts) and binaryen's own errors for invalid ones.
 */
export function prepareModule(original: Uint8Array, ramBytes: number): PreparedModule {
  const t0 = performance.now();
  const facts = moduleFacts(original);
  const ramPages = ramBytes / 65536;
  const dirtyPages = Math.max(1, Math.ceil(ramBytes / 4096 / 65536));
  // The module's own fault first, with the engine's precise message.
  new WebAssembly.Module(original as BufferSource);
  const rewritten = importMemories(
    lowerBulkMemory(original),
    guestMemoryPages(facts, ramPages),
    dirtyPages,
  );
  const m = binaryen.readBinary(rewritten);
  try {
    m.setFeatures(ENGINE_FEATURES);
    const [, dirty] = memoryNames(m);
    m.runPasses(["instrument-memory", "log-execution"]);
    defineHooks(m, dirty, "ferry_budget");
    binaryen.setAlwaysInlineMaxSize(40);
    m.runPasses(["inlining"]);
    const imports = [
      `${FERRY_MODULE}.check`,
      ...BLOCKING_WASI.map((f) => `${WASI_MODULE}.${f}`),
    ];
    binaryen.setPassArgument("asyncify-imports", imports.join(","));
    binaryen.setPassArgument("asyncify-in-secondary-memory", "true");
    binaryen.setPassArgument("asyncify-secondary-memory-size", String(ASYNCIFY_BYTES / 65536));
    binaryen.setOptimizeLevel(1);
    binaryen.setShrinkLevel(0);
    m.runPasses(["asyncify"]);
    for (const name of ["asyncify-imports", "asyncify-in-secondary-memory"]) {
      binaryen.setPassArgument(name, null);
    }
    binaryen.setPassArgument("asyncify-secondary-memory-size", null);
    m.optimize();
    exportAsyncifyMemory(m);
    let globals = 0;
    for (let i = 0; i < m.getNumGlobals(); i++) {
      const g = binaryen.getGlobalInfo(m.getGlobalByIndex(i));
      if (!g.mutable || g.module) continue;
      m.addGlobalExport(g.name, `${GLOBAL_EXPORT_PREFIX}${globals++}`);
    }
    if (!m.validate()) throw new Error("wasm prepare: the prepared module does not validate");
    const bytes = m.emitBinary();
    return { bytes, globals, minPages: facts.minPages, prepareMs: performance.now() - t0 };
  } finally {
    m.dispose();
  }
}

/** Features of the prepared module: what V8 in Deno runs (binaryen's `All` emits proposals). */
const ENGINE_FEATURES =
  ((f: Record<string, number>) =>
    f.All & ~(f.CompactImports | f.CustomPageSizes | f.StackSwitching | f.SharedEverything |
      f.Strings | f.FP16 | f.WideArithmetic | f.RelaxedAtomics | f.AcquireReleaseAtomics))(
      binaryen.Features as unknown as Record<string, number>,
    );

/** Features the bulk-memory lowering runs with (it aborts with binaryen's `All`). */
const LOWERING_FEATURES = binaryen.Features.MVP | binaryen.Features.BulkMemory |
  binaryen.Features.BulkMemoryOpt | binaryen.Features.MutableGlobals |
  binaryen.Features.SignExt | binaryen.Features.NontrappingFPToInt | binaryen.Features.SIMD128 |
  binaryen.Features.Multivalue | binaryen.Features.ReferenceTypes;

/** `memory.copy` / `memory.fill` become loops of stores (which step 2 instruments). */
function lowerBulkMemory(original: Uint8Array): Uint8Array {
  const m = binaryen.readBinary(original);
  try {
    m.setFeatures(LOWERING_FEATURES);
    m.runPasses(["llvm-memory-copy-fill-lowering"]);
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

function exportAsyncifyMemory(m: binaryen.Module): void {
  const match = /\(memory \$(\S*asyncify\S*)/.exec(m.emitText());
  if (!match) throw new Error("wasm prepare: asyncify's memory not found");
  m.addMemoryExport(match[1], ASYNCIFY_MEMORY_EXPORT);
}
