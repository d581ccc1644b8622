/**
 * A WebAssembly binary's sections, read and rewritten without a toolchain: the checks Ferry
 * makes before preparing a guest module (one memory, WASI preview1 imports only) and the
 * rewrite that turns the module's own memory into two imported shared memories (the guest RAM
 * and the dirty log), so that the RAM block is the program's linear memory.
 *
 * @module
 */

/** A module Ferry cannot run as a guest; the message says why. */
export class WasmModuleError extends Error {
  /** Builds the error; the message starts with "wasm guest: ". */
  constructor(detail: string) {
    super(`wasm guest: ${detail}`);
    this.name = "WasmModuleError";
  }
}

/** The only import module a guest may name. */
export const WASI_MODULE = "wasi_snapshot_preview1";
/** Import module of the memories and hooks Ferry adds. */
export const FERRY_MODULE = "ferry";

/**
 * The memory a guest of `facts` gets under a cap of `capPages` (`--ram`): it starts at the
 * module's declared size and grows with memory.grow up to its declared maximum, at most the cap.
 */
export function guestMemoryPages(
  facts: ModuleFacts,
  capPages: number,
): { min: number; max: number } {
  return { min: facts.minPages, max: Math.min(facts.maxPages ?? capPages, capPages) };
}

/** What the module declares about its memory and imports. */
export interface ModuleFacts {
  /** Declared initial memory size in 64 KiB pages. */
  minPages: number;
  /** Declared maximum in 64 KiB pages, or null. */
  maxPages: number | null;
  /** Imported function names (`module.name`). */
  imports: string[];
  exports: string[];
}

interface Section {
  id: number;
  body: Uint8Array;
}

class Reader {
  pos = 0;
  constructor(readonly b: Uint8Array) {}
  byte(): number {
    if (this.pos >= this.b.length) {
      throw new WasmModuleError("not a WebAssembly module (truncated)");
    }
    return this.b[this.pos++];
  }
  u32(): number {
    let result = 0, shift = 0;
    for (;;) {
      const x = this.byte();
      result += (x & 0x7f) * 2 ** shift;
      if ((x & 0x80) === 0) break;
      shift += 7;
      if (shift > 35) throw new WasmModuleError("not a WebAssembly module (bad LEB128)");
    }
    return result;
  }
  bytes(n: number): Uint8Array {
    if (this.pos + n > this.b.length) {
      throw new WasmModuleError("not a WebAssembly module (truncated)");
    }
    const out = this.b.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
  name(): string {
    return new TextDecoder().decode(this.bytes(this.u32()));
  }
  limits(): { flags: number; min: number; max: number | null } {
    const flags = this.byte();
    if (flags & 4) throw new WasmModuleError("64-bit memories are not supported");
    const min = this.u32();
    const max = flags & 1 ? this.u32() : null;
    return { flags, min, max };
  }
}

function leb(n: number): number[] {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return out;
}

function nameBytes(s: string): number[] {
  const b = new TextEncoder().encode(s);
  return [...leb(b.length), ...b];
}

function sections(bytes: Uint8Array): Section[] {
  const magic = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  if (bytes.length < 8 || magic.some((m, i) => bytes[i] !== m)) {
    throw new WasmModuleError("not a WebAssembly module (bad magic or version)");
  }
  const r = new Reader(bytes);
  r.pos = 8;
  const out: Section[] = [];
  while (r.pos < bytes.length) {
    const id = r.byte();
    out.push({ id, body: r.bytes(r.u32()) });
  }
  return out;
}

/** Skips one import description of `kind` (0 func, 1 table, 2 memory, 3 global, 4 tag). */
function skipDesc(r: Reader, kind: number): void {
  if (kind === 0 || kind === 4) {
    if (kind === 4) r.byte();
    r.u32();
  } else if (kind === 1) {
    const t = r.byte();
    if (t === 0x64 || t === 0x63) r.byte();
    r.limits();
  } else if (kind === 2) r.limits();
  else if (kind === 3) {
    const t = r.byte();
    if (t === 0x64 || t === 0x63) r.byte();
    r.byte();
  } else throw new WasmModuleError(`unknown import kind ${kind}`);
}

/**
 * Reads what Ferry checks: exactly one memory, defined by the module (not imported), and
 * imports only from wasi_snapshot_preview1. Throws WasmModuleError otherwise.
 */
export function moduleFacts(bytes: Uint8Array): ModuleFacts {
  const facts: ModuleFacts = { minPages: 0, maxPages: null, imports: [], exports: [] };
  let memories = 0;
  for (const s of sections(bytes)) {
    const r = new Reader(s.body);
    if (s.id === 2) {
      for (let n = r.u32(); n > 0; n--) {
        const mod = r.name(), field = r.name(), kind = r.byte();
        if (kind === 2) throw new WasmModuleError(`it imports its memory (${mod}.${field})`);
        if (mod !== WASI_MODULE) {
          throw new WasmModuleError(
            `it imports ${mod}.${field}; Ferry provides only ${WASI_MODULE}`,
          );
        }
        if (kind !== 0) throw new WasmModuleError(`it imports ${mod}.${field}, not a function`);
        facts.imports.push(`${mod}.${field}`);
        skipDesc(r, kind);
      }
    } else if (s.id === 5) {
      for (let n = r.u32(); n > 0; n--) {
        const l = r.limits();
        memories++;
        facts.minPages = l.min;
        facts.maxPages = l.max;
      }
    } else if (s.id === 7) {
      for (let n = r.u32(); n > 0; n--) {
        facts.exports.push(r.name());
        r.byte();
        r.u32();
      }
    }
  }
  if (memories !== 1) {
    throw new WasmModuleError(`it defines ${memories} memories; a guest has exactly one`);
  }
  if (!facts.exports.includes("_start")) {
    throw new WasmModuleError("it exports no _start (not a WASI command)");
  }
  return facts;
}

/**
 * Rewrites a checked module so memory 0 is `ferry.memory` (shared, `ram.min` pages growing up
 * to `ram.max`) and memory 1 is `ferry.dirty` (shared, `dirtyPages` pages, fixed): the memory
 * section is removed, the two imports are put first in the import section (memory indices
 * only; function indices do not change).
 */
export function importMemories(
  bytes: Uint8Array,
  ram: { min: number; max: number },
  dirtyPages: number,
): Uint8Array {
  const mem = (field: string, min: number, max: number) => [
    ...nameBytes(FERRY_MODULE),
    ...nameBytes(field),
    2,
    0x03,
    ...leb(min),
    ...leb(max),
  ];
  const added = [...mem("memory", ram.min, ram.max), ...mem("dirty", dirtyPages, dirtyPages)];
  const out: number[] = [0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00];
  const push = (id: number, body: ArrayLike<number>) => {
    out.push(id, ...leb(body.length));
    for (let i = 0; i < body.length; i++) out.push(body[i]);
  };
  let done = false;
  for (const s of sections(bytes)) {
    if (s.id === 5) continue;
    if (s.id === 2) {
      const r = new Reader(s.body);
      const n = r.u32();
      push(2, [...leb(n + 2), ...added, ...s.body.subarray(r.pos)]);
      done = true;
      continue;
    }
    // No import section: insert one before the first section that must follow it.
    if (!done && s.id !== 0 && s.id !== 1) {
      push(2, [2, ...added]);
      done = true;
    }
    push(s.id, s.body);
  }
  if (!done) push(2, [2, ...added]);
  return new Uint8Array(out);
}
