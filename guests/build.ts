/**
 * The sample guests: WASI preview1 programs written in AssemblyScript (`guests/assembly/`),
 * built with npm `assemblyscript` (pinned in deno.json). A build is cached in the user's cache
 * directory (`~/.cache/ferry/guests/NAME-KEY.wasm`, adapters/cache_dir.ts), KEY being the hash
 * of the compiler's version, its flags and every source file, so building again costs only
 * that hash, in this clone or any other: the tests call {@link buildGuest} for what they need,
 * `deno task guests` builds them all and also writes them as `guests/build/NAME.wasm` (git
 * ignores it), the names the README uses. See docs/guests.md.
 *
 * ```sh
 * deno task guests            # every guest
 * deno task guests kvstore    # only these
 * ```
 *
 * @module
 */
import { ferryCacheDir } from "../adapters/cache_dir.ts";

/** The sample guests, by the name of their source file in guests/assembly/. */
export const GUESTS = ["kvstore", "compute"] as const;

/** One sample guest's name. */
export type GuestName = (typeof GUESTS)[number];

const SOURCES = new URL("./assembly/", import.meta.url);
const BUILD = new URL("./build/", import.meta.url);

/**
 * The compiler's flags: no garbage collector (the programs manage their own heap), no abort
 * import (they import WASI only), `_start` runs the top-level code (a WASI command), no
 * SIMD (Ferry does not dirty-track SIMD stores).
 */
const ASC_FLAGS = [
  "--runtime",
  "stub",
  "-O3",
  "--use",
  "abort=",
  "--exportStart",
  "_start",
  "--disable",
  "simd",
];

/** The pinned compiler (the specifier deno.json maps `assemblyscript/` to). */
async function compilerSpec(): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(new URL("../deno.json", import.meta.url)));
  return String(config.imports["assemblyscript/"]);
}

async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The cache key of `name`: compiler, flags and every source file (they share modules). */
async function buildKey(name: GuestName): Promise<string> {
  const files: string[] = [];
  for await (const e of Deno.readDir(SOURCES)) {
    if (e.isFile && e.name.endsWith(".ts")) files.push(e.name);
  }
  const parts = [name, await compilerSpec(), ...ASC_FLAGS];
  for (const f of files.sort()) parts.push(f, await Deno.readTextFile(new URL(f, SOURCES)));
  return (await sha256Hex(new TextEncoder().encode(parts.join("\0")))).slice(0, 16);
}

/** What building one guest did. */
export interface BuiltGuest {
  name: GuestName;
  /** The module, `~/.cache/ferry/guests/NAME-KEY.wasm` (never rewritten: KEY is its sources' hash). */
  path: string;
  /** False when it was built now. */
  cached: boolean;
  /** Compile time in ms (0 when cached). */
  ms: number;
}

/**
 * Builds guest `name` unless a build of the same sources is there; returns its path. Safe to
 * call from processes running at once (each writes a file of its own, then renames it).
 * Throws an Error with the compiler's diagnostics when the sources do not compile.
 */
export async function buildGuest(name: GuestName): Promise<BuiltGuest> {
  if (!GUESTS.includes(name)) throw new RangeError(`no sample guest '${name}' (${GUESTS})`);
  const dir = ferryCacheDir("guests"); // shared by every clone on this machine
  const path = `${dir}/${name}-${await buildKey(name)}.wasm`;
  try {
    await Deno.stat(path);
    return { name, path, cached: true, ms: 0 };
  } catch { /* not built yet */ }
  const t0 = performance.now();
  await Deno.mkdir(dir, { recursive: true });
  const tmp = `${path}.${crypto.randomUUID()}.tmp`;
  const { default: asc } = await import("assemblyscript/asc");
  const { error, stderr } = await asc.main([
    new URL(`${name}.ts`, SOURCES).pathname,
    "--outFile",
    tmp,
    ...ASC_FLAGS,
  ]);
  if (error) {
    await Deno.remove(tmp).catch(() => {});
    throw new Error(`guest ${name} does not compile: ${error.message}\n${stderr.toString()}`);
  }
  await Deno.rename(tmp, path);
  return { name, path, cached: false, ms: performance.now() - t0 };
}

/**
 * `deno task guests [NAME...]`: builds and writes `guests/build/NAME.wasm`. Older builds stay
 * in the cache (a few hundred KiB each): another clone may be on those sources.
 */
async function main(args: string[]): Promise<number> {
  const bad = args.filter((a) => !(GUESTS as readonly string[]).includes(a));
  if (bad.length > 0) {
    console.error(`usage: deno task guests [${GUESTS.join("|")}]...; unknown: ${bad.join(" ")}`);
    return 2;
  }
  const names = (args.length > 0 ? args : [...GUESTS]) as GuestName[];
  await Deno.mkdir(BUILD, { recursive: true });
  for (const name of names) {
    const built = await buildGuest(name);
    const named = new URL(`${name}.wasm`, BUILD).pathname;
    const tmp = `${named}.${crypto.randomUUID()}.tmp`;
    await Deno.copyFile(built.path, tmp);
    await Deno.rename(tmp, named);
    const size = (await Deno.stat(named)).size;
    const how = built.cached ? "cached" : `built in ${Math.round(built.ms)} ms`;
    console.log(`guests/build/${name}.wasm  ${size} bytes  (${how})`);
  }
  return 0;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
