/**
 * `--guest wasm:PATH.wasm[,args=A B,env=K=V,...]`: parsing, and loading the module as the
 * machine's guest: read it, check it, prepare it (wasm_prepare.ts; cached by the module's
 * hash and the RAM size, since preparing a large program takes minutes) and allocate its
 * memories.
 *
 * @module
 */

import { basename } from "node:path";
import { ferryCacheDir } from "../cache_dir.ts";
import { WasmModuleError } from "./wasm_binary.ts";
import { WASI_FUNCTIONS } from "./wasi_host.ts";
import { allocateWasmBuffers, type WasmShared } from "./wasm_shared.ts";

/** A parsed `--guest`. */
export interface GuestSpec {
  kind: "wasm";
  path: string;
  args: string[];
  env: string[];
}

/** Largest module file accepted. */
export const MAX_MODULE_BYTES = 64 << 20;
/** Bumped whenever preparation changes, so cached modules of older versions are not used. */
const PREP_VERSION = 3;

const USAGE = "expected wasm:PATH.wasm[,args=ARG ARG...][,env=K=V]...";

/** Parses a `--guest` value. Throws a RangeError naming the offending part. */
export function parseGuest(s: string): GuestSpec {
  if (!s.startsWith("wasm:")) throw new RangeError(`guest: unknown kind in '${s}'; ${USAGE}`);
  const [path, ...parts] = s.slice(5).split(",");
  if (path === "") throw new RangeError(`guest: no module path; ${USAGE}`);
  const spec: GuestSpec = { kind: "wasm", path, args: [], env: [] };
  for (const part of parts) {
    if (part.startsWith("args=")) spec.args = part.slice(5).split(/\s+/).filter((a) => a !== "");
    else if (/^env=[^=]+=/.test(part)) spec.env.push(part.slice(4));
    else throw new RangeError(`guest: '${part}' is not args=... or env=K=V; ${USAGE}`);
  }
  return spec;
}

function hex(b: ArrayBuffer): string {
  return Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, "0")).join("");
}

function cacheDir(): string {
  return Deno.env.get("FERRY_WASM_CACHE") || ferryCacheDir("wasm");
}

interface CachedMeta {
  globals: number;
  prepareMs: number;
}

/** The prepared module for `original` and `ramBytes`, from the cache or prepared now. */
async function prepared(
  original: Uint8Array,
  sha256: string,
  ramBytes: number,
): Promise<{ bytes: Uint8Array; globals: number; cached: boolean; prepareMs: number }> {
  const dir = cacheDir();
  const key = `${sha256}-${ramBytes}-v${PREP_VERSION}`;
  try {
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/${key}.json`)) as CachedMeta;
    const bytes = await Deno.readFile(`${dir}/${key}.wasm`);
    if (WebAssembly.validate(bytes)) return { bytes, ...meta, cached: true };
  } catch { /* not cached */ }
  const { prepareModule } = await import("./wasm_prepare.ts");
  const p = prepareModule(original, ramBytes);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${dir}/${key}.${crypto.randomUUID()}`;
    await Deno.writeFile(`${tmp}.wasm`, p.bytes);
    await Deno.rename(`${tmp}.wasm`, `${dir}/${key}.wasm`);
    const meta: CachedMeta = { globals: p.globals, prepareMs: Math.round(p.prepareMs) };
    await Deno.writeTextFile(`${tmp}.json`, JSON.stringify(meta));
    await Deno.rename(`${tmp}.json`, `${dir}/${key}.json`);
  } catch { /* a read-only cache only costs time */ }
  return { bytes: p.bytes, globals: p.globals, cached: false, prepareMs: p.prepareMs };
}

/** What loading a guest reports. */
export interface LoadedGuest {
  shared: WasmShared;
  cached: boolean;
  prepareMs: number;
}

/**
 * Loads the guest of `spec` for a RAM of `ramBytes` (a multiple of 64 KiB, at least the
 * module's declared initial memory). Throws WasmModuleError (or a RangeError) saying why a
 * module cannot be a guest.
 */
export async function loadGuest(spec: GuestSpec, ramBytes: number): Promise<LoadedGuest> {
  if (ramBytes % 65536 !== 0) {
    throw new WasmModuleError(`--ram ${ramBytes} is not a multiple of the 64 KiB wasm page`);
  }
  let original: Uint8Array;
  try {
    const st = await Deno.stat(spec.path);
    if (st.size > MAX_MODULE_BYTES) {
      throw new WasmModuleError(`${spec.path} is ${st.size} bytes, above ${MAX_MODULE_BYTES}`);
    }
    original = await Deno.readFile(spec.path);
  } catch (e) {
    if (e instanceof WasmModuleError) throw e;
    throw new WasmModuleError(`cannot read ${spec.path}: ${(e as Error).message}`);
  }
  const { guestMemoryPages, moduleFacts } = await import("./wasm_binary.ts");
  const facts = moduleFacts(original);
  for (const name of facts.imports) {
    const fn = name.slice(name.indexOf(".") + 1);
    if (!WASI_FUNCTIONS.includes(fn)) {
      throw new WasmModuleError(`it imports ${name}, which WASI preview1 does not have`);
    }
  }
  if (facts.minPages * 65536 > ramBytes) {
    throw new WasmModuleError(
      `its memory starts at ${facts.minPages * 65536} bytes, above --ram ${ramBytes}`,
    );
  }
  const sha256 = hex(await crypto.subtle.digest("SHA-256", original as BufferSource));
  const p = await prepared(original, sha256, ramBytes);
  const pages = guestMemoryPages(facts, ramBytes / 65536);
  const dirtyPages = Math.max(1, Math.ceil(ramBytes / 4096 / 65536));
  return {
    shared: {
      // Starts small and grows (what that costs: guest_ram.ts resizableBuffer).
      memory: new WebAssembly.Memory({ initial: pages.min, maximum: pages.max, shared: true }),
      dirtyMemory: new WebAssembly.Memory({
        initial: dirtyPages,
        maximum: dirtyPages,
        shared: true,
      }),
      module: p.bytes,
      sha256,
      path: spec.path,
      globals: p.globals,
      args: [basename(spec.path), ...spec.args],
      env: spec.env,
      ...allocateWasmBuffers(),
    },
    cached: p.cached,
    prepareMs: p.prepareMs,
  };
}
