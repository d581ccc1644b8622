/**
 * The vCPU Worker's loop for a WebAssembly guest: instantiates the prepared module once (its
 * memory is the RAM block), runs `_start` while the runstate is `running`, and parks at a
 * safe point otherwise: `ferry.check` (loop heads, within a bounded time) or a blocking WASI
 * call unwinds the stack into asyncify's memory, and the whole guest state (started/exited,
 * output seq, clock, globals, that stack) is written to the state cell for the device state.
 * A state loaded there (a migration's destination) is applied before the next run, which
 * rewinds the stack and continues the program exactly where the source stopped.
 *
 * @module
 */

import type { SharedGuest } from "../memory/guest_ram.ts";
import {
  ctlViews,
  F_PASSES,
  GEN,
  PARKED,
  RUN_STATES,
  RUNNING,
  RUNSTATE,
  SHUTDOWN,
  STARTED,
  THROTTLE,
  WAKE,
} from "../memory/vcpu_ctl.ts";
import { ProcExit, wasiImports } from "./wasi_host.ts";
import { guestBytes, WasiDrives } from "./wasi_drives.ts";
import {
  decodeGuestState,
  encodeGuestState,
  type GlobalValue,
  type GuestState,
} from "./wasm_device_state.ts";
import { ASYNCIFY_MEMORY_EXPORT, GLOBAL_EXPORT_PREFIX } from "./wasm_prepare_names.ts";
import { publishTrap, STATE_LOAD, STATE_NONE, STATE_SAVED, stateViews } from "./wasm_shared.ts";

/** Messages the vCPU posts to the main thread. */
export type WasmVcpuMessage =
  | {
    kind: "output";
    seq: number;
    stream: "stdout" | "stderr";
    bytes: Uint8Array;
    /** The device-state generation that wrote it (vcpu_ctl.ts GEN); absent: the current one. */
    gen?: number;
    /** Counted in vcpu_ctl.ts OUT_PENDING (a synthetic workload's record): uncount when taken. */
    counted?: boolean;
  }
  | { kind: "exit"; code: number }
  /** The guest trapped: the reason is in the trap cell (wasm_shared.ts trapMessage). */
  | { kind: "trap" };

const SLICE_MS = 10;

interface Exports {
  _start(): void;
  asyncify_start_unwind(p: number): void;
  asyncify_stop_unwind(): void;
  asyncify_start_rewind(p: number): void;
  asyncify_stop_rewind(): void;
  asyncify_get_state(): number;
  [k: string]: unknown;
}

/** Runs the guest of `guest.wasm` until SHUTDOWN; `post` sends WasmVcpuMessages. */
export function runWasmVcpu(
  guest: SharedGuest,
  post: (m: WasmVcpuMessage) => void,
  incoming: boolean,
  ready: () => void,
): void {
  const w = guest.wasm!;
  const { i32, f64 } = ctlViews(guest.ctl);
  const cell = stateViews(w.state);
  const executing = () =>
    Atomics.load(i32, RUNSTATE) === RUNNING && Atomics.load(i32, SHUTDOWN) === 0;
  const g: GuestState = {
    started: false,
    exited: false,
    exitCode: 0,
    nextSeq: 1,
    monotonicNs: 0,
    globals: [],
    files: [],
    stack: new Uint8Array(0),
  };
  /** The device-state generation the guest runs (read as it starts running, after any load). */
  let gen = 0;
  const files = new WasiDrives(
    guest.drives ?? [],
    guestBytes(w.memory, new Uint8Array(guest.dirty)),
  );
  let resumedAt = performance.now();
  let monoAtResume = 0;
  const monotonicNs = () => monoAtResume + (performance.now() - resumedAt) * 1e6;
  let sliceStart = performance.now();
  // deno-lint-ignore prefer-const
  let ex!: Exports;
  // deno-lint-ignore prefer-const
  let stackMem!: Uint8Array;
  const startUnwind = () => {
    const dv = new DataView(stackMem.buffer);
    dv.setUint32(0, 8, true);
    dv.setUint32(4, stackMem.length, true);
    ex.asyncify_start_unwind(0);
  };
  const sleep = (ms: number) => {
    const gen = Atomics.load(i32, WAKE);
    if (executing()) Atomics.wait(i32, WAKE, gen, Math.max(0, ms));
  };
  const imports = {
    wasi_snapshot_preview1: wasiImports({
      mem: guestBytes(w.memory, new Uint8Array(guest.dirty)),
      files,
      stdin: w.stdin,
      args: w.args,
      env: w.env,
      output: (stream, bytes) => post({ kind: "output", seq: g.nextSeq++, stream, bytes, gen }),
      monotonicNs,
      rewinding: () => ex.asyncify_get_state() === 2,
      stopRewind: () => ex.asyncify_stop_rewind(),
      mustStop: () => !executing(),
      unwind: startUnwind,
      sleep,
    }),
    ferry: {
      memory: w.memory,
      dirty: w.dirtyMemory,
      check: () => {
        if (ex.asyncify_get_state() === 2) {
          ex.asyncify_stop_rewind();
          return;
        }
        f64[F_PASSES] += 1;
        const pct = Atomics.load(i32, THROTTLE);
        if (pct > 0 && performance.now() - sliceStart >= ((100 - pct) * SLICE_MS) / 100) {
          sleep((pct * SLICE_MS) / 100);
          sliceStart = performance.now();
        }
        if (!executing()) startUnwind();
      },
    },
  };
  const instance = new WebAssembly.Instance(
    new WebAssembly.Module(w.module as BufferSource),
    imports,
  );
  ex = instance.exports as unknown as Exports;
  stackMem = new Uint8Array((ex[ASYNCIFY_MEMORY_EXPORT] as WebAssembly.Memory).buffer);
  // A destination's RAM arrives by migration: the data segments just written must not stay.
  if (incoming) new Uint8Array(w.memory.buffer).fill(0);
  const globals = Array.from(
    { length: w.globals },
    (_, i) => ex[`${GLOBAL_EXPORT_PREFIX}${i}`] as WebAssembly.Global,
  );

  const save = () => {
    g.monotonicNs = monotonicNs();
    g.globals = globals.map((gl): GlobalValue => {
      const v = gl.value;
      return typeof v === "bigint" ? { type: 1, value: v } : { type: 3, value: v as number };
    });
    g.files = files.files();
    const used = g.started && !g.exited ? new DataView(stackMem.buffer).getUint32(0, true) : 0;
    g.stack = stackMem.slice(0, used);
    const bytes = encodeGuestState(g);
    cell.bytes.set(bytes);
    Atomics.store(cell.i32, 1, bytes.length);
    Atomics.store(cell.i32, 0, STATE_SAVED);
  };
  const load = () => {
    const n = Atomics.load(cell.i32, 1);
    const s = decodeGuestState(cell.bytes.slice(0, n), w.globals);
    Object.assign(g, s);
    files.restore(s.files);
    s.globals.forEach((gl, i) => {
      globals[i].value = gl.value;
    });
    stackMem.fill(0);
    stackMem.set(s.stack);
    monoAtResume = s.monotonicNs;
    resumedAt = performance.now();
    publishExit();
    Atomics.store(cell.i32, 0, STATE_NONE);
  };
  const publishExit = () => {
    Atomics.store(cell.i32, 2, g.exitCode);
    Atomics.store(cell.i32, 3, g.exited ? 1 : 0);
  };
  const setRunstate = (name: (typeof RUN_STATES)[number]) =>
    Atomics.store(i32, RUNSTATE, RUN_STATES.indexOf(name));

  const run = () => {
    gen = Atomics.load(i32, GEN);
    monoAtResume = g.monotonicNs;
    resumedAt = sliceStart = performance.now();
    const rewind = g.started;
    g.started = true;
    try {
      if (rewind) ex.asyncify_start_rewind(0);
      ex._start();
      if (ex.asyncify_get_state() === 1) {
        ex.asyncify_stop_unwind();
        return;
      }
      finish(0);
    } catch (e) {
      if (e instanceof ProcExit) finish(e.code);
      else {
        g.exited = true;
        g.exitCode = -1;
        publishExit();
        // The reason before the runstate: who sees one finds the other.
        publishTrap(w.trap, e instanceof Error ? e.message : String(e));
        setRunstate("guest-panicked");
        post({ kind: "trap" });
      }
    }
  };
  const finish = (code: number) => {
    g.exited = true;
    g.exitCode = code;
    publishExit();
    setRunstate("shutdown");
    post({ kind: "exit", code });
  };

  Atomics.store(i32, STARTED, 1);
  save();
  ready();
  while (Atomics.load(i32, SHUTDOWN) === 0) {
    const gen = Atomics.load(i32, WAKE);
    if (Atomics.load(cell.i32, 0) === STATE_LOAD) load();
    if (Atomics.load(i32, RUNSTATE) !== RUNNING || g.exited) {
      Atomics.wait(i32, WAKE, gen, 1000);
      continue;
    }
    Atomics.store(i32, PARKED, 0);
    if (executing()) {
      run();
      save();
    }
    Atomics.store(i32, PARKED, 1);
    Atomics.notify(i32, PARKED);
  }
  files.close();
}
