/**
 * What every thread shares about a WebAssembly guest (`SharedGuest.wasm`): the memories, the
 * prepared module, the stdin ring that `POST /machine/input` fills and the guest's `fd_read`
 * drains, and the state cell through which the parked vCPU hands its device state over.
 *
 * Stdin ring (`stdin`): int32 [0] = bytes read so far, [1] = bytes written so far (both
 * modulo 2^32), [2] = sealed (1 once a device state took the unread input: what is written
 * after it would not travel), [3] = the writers' lock; data from byte 16, STDIN_CAPACITY
 * bytes. One reader (the vCPU); the writers (`POST /machine/input` on the main thread, the
 * device state's save and load in a migration's Worker) hold the lock.
 *
 * State cell (`state`): int32 [0] = STATE_NONE | STATE_SAVED (the vCPU parked and wrote its
 * state) | STATE_LOAD (a loaded state waits for the vCPU), [1] = byte length, [2] = exit
 * code, [3] = exited flag; the bytes from offset 16.
 *
 * Trap cell (`trap`): int32 [0] = 0 until the guest trapped, then 1 + the byte length of the
 * trap's message (UTF-8, from offset 4, at most TRAP_TEXT_CAPACITY), written by the vCPU
 * before it sets the runstate `guest-panicked`, so whoever sees that runstate finds the
 * reason too.
 *
 * @module
 */

/** Bytes the stdin ring holds. */
export const STDIN_CAPACITY = 1 << 20;
/** Bytes the state cell holds (the unwound stack, globals and WASI state). */
export const STATE_CAPACITY = (1 << 20) + (64 << 10);

/** State cell flags. */
export const STATE_NONE = 0, STATE_SAVED = 1, STATE_LOAD = 2;

/** The guest's module and memories, as postMessage carries them. */
export interface WasmShared {
  /** The guest's linear memory: its buffer is RAM block 0. */
  memory: WebAssembly.Memory;
  /** The dirty log as a memory: its buffer is `SharedGuest.dirty`. */
  dirtyMemory: WebAssembly.Memory;
  /** The prepared module (wasm_prepare.ts). */
  module: Uint8Array;
  /** SHA-256 (hex) of the module file as given. */
  sha256: string;
  /** The module file's path, for display. */
  path: string;
  /** Exported mutable globals of the prepared module. */
  globals: number;
  /** argv (argv[0] is the module's file name) and the environment, `K=V`. */
  args: string[];
  env: string[];
  stdin: SharedArrayBuffer;
  state: SharedArrayBuffer;
  trap: SharedArrayBuffer;
}

/** Bytes of a trap's message the trap cell keeps (a longer one is cut at a character). */
export const TRAP_TEXT_CAPACITY = 4096;

/** Allocates the stdin ring, the state cell and the trap cell. */
export function allocateWasmBuffers(): {
  stdin: SharedArrayBuffer;
  state: SharedArrayBuffer;
  trap: SharedArrayBuffer;
} {
  return {
    stdin: new SharedArrayBuffer(16 + STDIN_CAPACITY),
    state: new SharedArrayBuffer(16 + STATE_CAPACITY),
    trap: new SharedArrayBuffer(4 + TRAP_TEXT_CAPACITY),
  };
}

/** Keeps why the guest trapped in the trap cell (before the runstate says so). */
export function publishTrap(trap: SharedArrayBuffer, message: string): void {
  const { written } = new TextEncoder().encodeInto(
    message,
    new Uint8Array(trap, 4, TRAP_TEXT_CAPACITY),
  );
  Atomics.store(new Int32Array(trap, 0, 1), 0, written + 1);
}

/** Why the guest trapped, or null while it has not. */
export function trapMessage(trap: SharedArrayBuffer): string | null {
  const cell = Atomics.load(new Int32Array(trap, 0, 1), 0);
  if (cell === 0) return null;
  return new TextDecoder().decode(new Uint8Array(trap, 4, cell - 1).slice());
}

/** Bytes waiting in the stdin ring. */
export function stdinPending(ring: SharedArrayBuffer): number {
  const i32 = new Int32Array(ring, 0, 4);
  return (Atomics.load(i32, 1) - Atomics.load(i32, 0)) >>> 0;
}

/** Appends `bytes` to the stdin ring (under the lock); false, writing nothing, if too many. */
function stdinWrite(ring: SharedArrayBuffer, bytes: Uint8Array): boolean {
  const i32 = new Int32Array(ring, 0, 4);
  const data = new Uint8Array(ring, 16, STDIN_CAPACITY);
  if (stdinPending(ring) + bytes.length > STDIN_CAPACITY) return false;
  let at = (Atomics.load(i32, 1) >>> 0) % STDIN_CAPACITY;
  let done = 0;
  while (done < bytes.length) {
    const n = Math.min(bytes.length - done, STDIN_CAPACITY - at);
    data.set(bytes.subarray(done, done + n), at);
    done += n;
    at = (at + n) % STDIN_CAPACITY;
  }
  Atomics.add(i32, 1, bytes.length);
  return true;
}

/** Reads up to `max` bytes from the stdin ring (consuming them unless `peek`). */
export function stdinRead(ring: SharedArrayBuffer, max: number, peek = false): Uint8Array {
  const i32 = new Int32Array(ring, 0, 4);
  const data = new Uint8Array(ring, 16, STDIN_CAPACITY);
  const n = Math.min(max, stdinPending(ring));
  const out = new Uint8Array(n);
  let at = (Atomics.load(i32, 0) >>> 0) % STDIN_CAPACITY;
  let done = 0;
  while (done < n) {
    const k = Math.min(n - done, STDIN_CAPACITY - at);
    out.set(data.subarray(at, at + k), done);
    done += k;
    at = (at + k) % STDIN_CAPACITY;
  }
  if (!peek) Atomics.add(i32, 0, n);
  return out;
}

const SEALED = 2, LOCK = 3;

/** A lock held longer than this was left by a Worker that ended while it held it. */
const LOCK_ABANDONED_MS = 1000;

/**
 * Runs `f` holding the ring's writer lock: a spin (any thread may write, the main thread
 * cannot wait), held for a copy of at most STDIN_CAPACITY bytes; a lock held for longer than
 * LOCK_ABANDONED_MS is taken over (its holder was terminated).
 */
function locked<T>(ring: SharedArrayBuffer, f: (i32: Int32Array) => T): T {
  const i32 = new Int32Array(ring, 0, 4);
  const since = performance.now();
  while (Atomics.compareExchange(i32, LOCK, 0, 1) !== 0) {
    if (performance.now() - since > LOCK_ABANDONED_MS) break;
  }
  try {
    return f(i32);
  } finally {
    Atomics.store(i32, LOCK, 0);
  }
}

/** Why the ring took no input: sealed (see {@link stdinOffer}) or full. */
export type StdinRefusal = "sealed" | "full";

/**
 * Appends `bytes` for the guest, or says why not: `sealed` when a device state has taken the
 * unread input and `staysHere()` (asked holding the lock) says the guest went with it (its
 * runstate is finish-migrate or postmigrate); when the guest stays, the seal is lifted.
 * `full` when they do not fit. Nothing is written when refused.
 */
export function stdinOffer(
  ring: SharedArrayBuffer,
  bytes: Uint8Array,
  staysHere: () => boolean,
): StdinRefusal | null {
  return locked(ring, (i32) => {
    if (Atomics.load(i32, SEALED) === 1) {
      if (!staysHere()) return "sealed";
      Atomics.store(i32, SEALED, 0);
    }
    return stdinWrite(ring, bytes) ? null : "full";
  });
}

/**
 * The unread input for a device state, sealing the ring: input offered after this is refused
 * while the guest is away (see {@link stdinOffer}), so that none is accepted and then lost.
 */
export function stdinSeal(ring: SharedArrayBuffer): Uint8Array {
  return locked(ring, (i32) => {
    Atomics.store(i32, SEALED, 1);
    return stdinRead(ring, stdinPending(ring), true);
  });
}

/** Replaces the unread input by `bytes` (a loaded device state's); false when they do not fit. */
export function stdinReplace(ring: SharedArrayBuffer, bytes: Uint8Array): boolean {
  return locked(ring, (i32) => {
    if (bytes.length > STDIN_CAPACITY) return false;
    stdinRead(ring, stdinPending(ring));
    Atomics.store(i32, SEALED, 0);
    return stdinWrite(ring, bytes);
  });
}

/** The state cell's views. */
export function stateViews(state: SharedArrayBuffer): { i32: Int32Array; bytes: Uint8Array } {
  return { i32: new Int32Array(state, 0, 4), bytes: new Uint8Array(state, 16) };
}

/** The guest's exit code once it exited (proc_exit or a return from _start), else null. */
export function exitCode(state: SharedArrayBuffer): number | null {
  const { i32 } = stateViews(state);
  return Atomics.load(i32, 3) === 1 ? Atomics.load(i32, 2) : null;
}
