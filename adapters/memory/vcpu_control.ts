/**
 * Control of the vCPU from any thread through the shared control block: runstate, parking
 * handshake, throttle, device state (registers), and the postcopy fault protocol.
 *
 * Parking handshake (all sequentially consistent Atomics): the vCPU stores PARKED=0 and then
 * re-reads RUNSTATE before executing; a controller stores RUNSTATE and then reads PARKED. One
 * of them always sees the other's store, so "parked" is never reported while the vCPU runs.
 *
 * @module
 */

import { decodeDeviceState, DeviceStateError, encodeDeviceState } from "./device_state.ts";
import type { SharedGuest } from "./guest_ram.ts";
import type { WasmShared } from "../wasm/wasm_shared.ts";
import { loadWasmState, saveWasmState, wasmNextSeq } from "../wasm/wasm_state_cell.ts";
import { isWasmDeviceState } from "../wasm/wasm_device_state.ts";
import type { WorkloadRegs } from "./workload.ts";
import {
  type CtlViews,
  ctlViews,
  F_BLOCKTIME,
  F_FAULTS,
  F_NEXT_SEQ,
  F_RAM_SIZE,
  FAULT_PAGE,
  FAULT_SEQ,
  FAULT_WAITING,
  GEN,
  PARKED,
  POSTCOPY,
  readRegs,
  RECEIVED_MARKS,
  ringWake,
  RUN_STATES,
  RUNSTATE,
  type RunState,
  SNAPSHOT,
  THROTTLE,
  writeRegs,
} from "./vcpu_ctl.ts";

export { DeviceStateError };
export type { RunState };

/** The registers as a plain object for display (`GET /machine`). */
export interface VcpuRegisters {
  workload: string;
  booted: boolean;
  start: number;
  end: number;
  cursor: number;
  passes: number;
  "pages-written": number;
  rate: number;
  hot: number;
  parked: boolean;
}

/** A published postcopy fault: the vCPU wants `page`. */
export interface PostcopyFault {
  seq: number;
  page: number;
}

/** Postcopy blocktime so far: total ms the vCPU was blocked and how many faults blocked it. */
export interface Blocktime {
  totalMs: number;
  faults: number;
}

/** Controls the vCPU of a guest; construct it in any thread from the guest or its ctl buffer. */
export class VcpuControl {
  readonly #ctl: CtlViews;
  /** The guest's snapshot marks; null when constructed from the control block alone. */
  readonly #snapCopied: Uint8Array | null;
  /** A WebAssembly guest's shared parts; null for the synthetic workloads. */
  readonly #wasm: WasmShared | null;
  /** The machine's drives, which a WebAssembly guest's open files must name. */
  readonly #drives: readonly { id: string; size: number }[];

  /** Wraps a guest's control block. */
  constructor(source: SharedGuest | SharedArrayBuffer) {
    const guest = source instanceof SharedArrayBuffer ? null : source;
    this.#ctl = ctlViews(guest === null ? source as SharedArrayBuffer : guest.ctl);
    this.#snapCopied = guest === null ? null : new Uint8Array(guest.snapCopied);
    this.#wasm = guest?.wasm ?? null;
    this.#drives = guest?.drives ?? [];
  }

  /** The current runstate. */
  get runstate(): RunState {
    return RUN_STATES[Atomics.load(this.#ctl.i32, RUNSTATE)];
  }

  /** Sets the runstate and wakes the vCPU so it starts or parks at once. */
  setRunstate(rs: RunState): void {
    const code = RUN_STATES.indexOf(rs);
    if (code < 0) throw new RangeError(`unknown runstate '${rs}'`);
    Atomics.store(this.#ctl.i32, RUNSTATE, code);
    ringWake(this.#ctl.i32);
  }

  /** True when the vCPU has acknowledged that it is not executing. */
  isParked(): boolean {
    return Atomics.load(this.#ctl.i32, PARKED) === 1;
  }

  /** Blocks (Atomics.wait, Workers only) until the vCPU is parked; false on timeout. */
  waitParked(timeoutMs: number): boolean {
    const deadline = performance.now() + timeoutMs;
    while (!this.isParked()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      Atomics.wait(this.#ctl.i32, PARKED, 0, left);
    }
    return true;
  }

  /** Resolves true once the vCPU is parked (Atomics.waitAsync; main thread), false on timeout. */
  async waitParkedAsync(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (!this.isParked()) {
      const left = deadline - performance.now();
      if (left <= 0) return false;
      const r = Atomics.waitAsync(this.#ctl.i32, PARKED, 0, left);
      if (r.async) await r.value;
    }
    return true;
  }

  /** CPU throttle percentage: the vCPU sleeps this share of each 10 ms slice. */
  get throttle(): number {
    return Atomics.load(this.#ctl.i32, THROTTLE);
  }

  /** Sets the throttle, an integer 0..99. */
  set throttle(pct: number) {
    if (!Number.isInteger(pct) || pct < 0 || pct > 99) {
      throw new RangeError(`cpu throttle ${pct} outside 0..99`);
    }
    Atomics.store(this.#ctl.i32, THROTTLE, pct);
  }

  /** RAM size in bytes recorded in the control block. */
  get ramSize(): number {
    return this.#ctl.f64[F_RAM_SIZE];
  }

  /** Encodes the registers (see device_state.ts). The vCPU must be parked. */
  saveDeviceState(): Uint8Array {
    if (!this.isParked()) throw new Error("device state: the vCPU is executing; stop it first");
    const regs = encodeDeviceState(readRegs(this.#ctl), this.ramSize);
    return this.#wasm === null ? regs : saveWasmState(this.#wasm, regs, this.ramSize);
  }

  /**
   * Validates `bytes` completely, then replaces the registers (workload kind and parameters
   * included). Throws DeviceStateError, changing nothing, on malformed input. The vCPU must be
   * parked and must stay parked until this returns.
   */
  loadDeviceState(bytes: Uint8Array): void {
    if (this.#wasm === null && isWasmDeviceState(bytes)) {
      throw new DeviceStateError(
        "the source runs a WebAssembly guest (--guest wasm:), this machine a --workload",
      );
    }
    if (this.#wasm !== null) {
      if (!this.isParked()) throw new Error("device state: the vCPU is executing; stop it first");
      writeRegs(this.#ctl, loadWasmState(this.#wasm, bytes, this.ramSize, this.#drives));
      Atomics.add(this.#ctl.i32, GEN, 1);
      return;
    }
    const regs = decodeDeviceState(bytes, this.ramSize);
    if (!this.isParked()) throw new Error("device state: the vCPU is executing; stop it first");
    writeRegs(this.#ctl, regs);
    Atomics.add(this.#ctl.i32, GEN, 1);
  }

  /**
   * The seq the guest's next output record gets (read it with the vCPU parked; a WebAssembly
   * guest's count lives in its saved state).
   */
  nextOutputSeq(): number {
    return this.#wasm === null ? this.#ctl.f64[F_NEXT_SEQ] : wasmNextSeq(this.#wasm);
  }

  /** The device-state generation: every load bumps it; output records carry theirs. */
  get generation(): number {
    return Atomics.load(this.#ctl.i32, GEN);
  }

  /** The registers for display. */
  registers(): VcpuRegisters {
    const r = readRegs(this.#ctl);
    return {
      workload: r.kind,
      booted: r.booted,
      start: r.start,
      end: r.end,
      cursor: r.cursor,
      passes: r.passes,
      "pages-written": r.pagesWritten,
      rate: r.rate,
      hot: r.hot,
      parked: this.isParked(),
    };
  }

  /** Turns postcopy page checks on or off (set it before the vCPU runs on a destination). */
  setPostcopy(on: boolean): void {
    Atomics.store(this.#ctl.i32, POSTCOPY, on ? 1 : 0);
    ringWake(this.#ctl.i32);
  }

  /** Whether postcopy page checks are on. */
  get postcopy(): boolean {
    return Atomics.load(this.#ctl.i32, POSTCOPY) === 1;
  }

  /**
   * Starts a copy-on-first-write snapshot of RAM as it is now: clears the marks and sets the
   * SNAPSHOT flag, so the vCPU saves each page into `SharedGuest.snap` before its first write
   * to it. Any thread. Throws when the vCPU is executing (the marks must be cleared while it
   * cannot write), when this control was made from the control block alone, or when the
   * guest was allocated without snapshot buffers.
   */
  beginSnapshot(): void {
    if (this.#snapCopied === null) throw new Error("snapshot: needs the guest, not just its ctl");
    if (this.#snapCopied.length === 0) {
      throw new Error("snapshot: this guest has no snapshot buffers (no arrival digest)");
    }
    if (!this.isParked()) throw new Error("snapshot: the vCPU is executing; stop it first");
    this.#snapCopied.fill(0);
    Atomics.store(this.#ctl.i32, SNAPSHOT, 1);
  }

  /**
   * Ends the snapshot: clears the flag (the vCPU stops copying from its next chunk on). The
   * marks are zeroed too: here when the vCPU is parked, else by the vCPU once it sees the flag
   * off (store, then read PARKED; the vCPU stores PARKED, then reads the flag). Any thread.
   */
  endSnapshot(): void {
    Atomics.store(this.#ctl.i32, SNAPSHOT, 0);
    if (this.isParked()) this.#snapCopied?.fill(0);
  }

  /** Whether a snapshot is on (the SNAPSHOT flag). */
  get snapshotting(): boolean {
    return Atomics.load(this.#ctl.i32, SNAPSHOT) === 1;
  }

  /** The latest fault if its seq differs from `lastSeq`, else null. */
  nextFault(lastSeq: number): PostcopyFault | null {
    return nextFault(this.#ctl.i32.buffer as SharedArrayBuffer, lastSeq);
  }

  /** Resolves with the next fault after `lastSeq`, or null after `timeoutMs`. */
  async waitFaultAsync(lastSeq: number, timeoutMs: number): Promise<PostcopyFault | null> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const fault = this.nextFault(lastSeq);
      const left = deadline - performance.now();
      if (fault !== null || left <= 0) return fault;
      const r = Atomics.waitAsync(this.#ctl.i32, FAULT_SEQ, lastSeq | 0, left);
      if (r.async) await r.value;
    }
  }

  /** Postcopy blocktime accumulated by the vCPU. */
  blocktime(): Blocktime {
    return blocktime(this.#ctl.i32.buffer as SharedArrayBuffer);
  }
}

/** Postcopy blocktime accumulated in a control block. */
export function blocktime(ctl: SharedArrayBuffer): Blocktime {
  const { f64 } = ctlViews(ctl);
  return { totalMs: f64[F_BLOCKTIME], faults: f64[F_FAULTS] };
}

/**
 * The latest fault published in `ctl` if its sequence number differs from `lastSeq`, else
 * null. Reads seq, page, seq again so a page never pairs with the wrong seq.
 */
export function nextFault(ctl: SharedArrayBuffer, lastSeq: number): PostcopyFault | null {
  const { i32 } = ctlViews(ctl);
  for (;;) {
    const seq = Atomics.load(i32, FAULT_SEQ);
    if (seq === lastSeq) return null;
    const page = Atomics.load(i32, FAULT_PAGE);
    if (Atomics.load(i32, FAULT_SEQ) === seq) return { seq, page };
  }
}

/**
 * Marks pages [firstPage, firstPage + count) present (after their data was written) and wakes
 * a vCPU waiting for one. The Atomics.add after the plain fill orders the marks before the
 * FAULT_WAITING check; the vCPU sets FAULT_WAITING before re-checking the map, so one of the
 * two always sees the other (no lost wake-up).
 */
export function markReceivedRange(guest: SharedGuest, firstPage: number, count: number): void {
  let views = receivedViews.get(guest.received);
  if (views === undefined) {
    views = { received: new Uint8Array(guest.received), i32: ctlViews(guest.ctl).i32 };
    receivedViews.set(guest.received, views);
  }
  views.received.fill(1, firstPage, firstPage + count);
  Atomics.add(views.i32, RECEIVED_MARKS, 1);
  if (Atomics.load(views.i32, FAULT_WAITING) !== 0) ringWake(views.i32);
}

const receivedViews = new WeakMap<SharedArrayBuffer, { received: Uint8Array; i32: Int32Array }>();

/** Marks one page present and wakes a vCPU waiting for it (see markReceivedRange). */
export function markReceived(guest: SharedGuest, page: number): void {
  markReceivedRange(guest, page, 1);
}

/** Makes a fresh control block's initial contents: registers, runstate, parked, RAM size. */
export function initControl(
  guest: SharedGuest,
  regs: WorkloadRegs,
  runstate: RunState,
  ramSize: number,
): VcpuControl {
  const views = ctlViews(guest.ctl);
  writeRegs(views, regs);
  views.f64[F_RAM_SIZE] = ramSize;
  Atomics.store(views.i32, PARKED, 1);
  const control = new VcpuControl(guest);
  control.setRunstate(runstate);
  return control;
}
