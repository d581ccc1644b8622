/**
 * Layout of the vCPU control block (`SharedGuest.ctl`, CTL_BYTES bytes): int32 cells for
 * runstate, handshakes and postcopy faults, then float64 cells for the registers and counters.
 * Any thread may read it; the cells marked "vCPU" are written only by the vCPU Worker while
 * it executes, and by VcpuControl.loadDeviceState while it is parked.
 *
 * @module
 */

import { WORKLOAD_KINDS, type WorkloadRegs } from "./workload.ts";

/** Runstates as QEMU names them, in the order of their numeric codes in the RUNSTATE cell. */
export const RUN_STATES = [
  "running",
  "paused",
  "inmigrate",
  "finish-migrate",
  "postmigrate",
  "colo",
  "shutdown",
  "guest-panicked",
] as const;

/** A runstate as QEMU names it. */
export type RunState = typeof RUN_STATES[number];

/** Code of `running` in the RUNSTATE cell. */
export const RUNNING = 0;

// Int32 cell indices.
/** Runstate code (index into RUN_STATES). */
export const RUNSTATE = 0;
/** Doorbell generation: bumped (and notified) by runstate changes, received pages, shutdown. */
export const WAKE = 1;
/** 1 while the vCPU is not executing (acknowledged), 0 while it executes. Notified on change. */
export const PARKED = 2;
/** Throttle percentage 0..99. */
export const THROTTLE = 3;
/** 1 = postcopy: check the received map before touching a page. */
export const POSTCOPY = 4;
/** Fault counter: bumped (and notified) after FAULT_PAGE is written. */
export const FAULT_SEQ = 5;
/** Page of the latest published fault. */
export const FAULT_PAGE = 6;
/** 1 while the vCPU waits for a faulted page (receivers notify WAKE only then). */
export const FAULT_WAITING = 7;
/** vCPU: workload kind code (index into WORKLOAD_KINDS). */
export const KIND = 8;
/** vCPU: 1 once the increment range has been booted. */
export const BOOTED = 9;
/** 1 asks the vCPU Worker to exit. */
export const SHUTDOWN = 10;
/** Set by the vCPU Worker once it runs its loop. */
export const STARTED = 11;
/** vCPU: xorshift128 state, four cells. */
export const PRNG = 12;
/** Bumped by every markReceived/markReceivedRange call (also their memory fence). */
export const RECEIVED_MARKS = 16;
/** 1 = copy-on-first-write snapshot: save a page into `snap` before the vCPU first writes it. */
export const SNAPSHOT = 17;
/** vCPU: 1 = the `random` workload's output carries the host clock (`clock=on`). */
export const CLOCK = 18;
/** Bumped by every device-state load: output records carry the generation that wrote them. */
export const GEN = 19;
/**
 * Output records a synthetic workload posted that the main thread has not taken yet: the vCPU
 * waits while {@link OUT_PENDING_MAX} are pending, as a guest waits on a slow console, so a
 * workload that writes records faster than they are taken cannot queue them without bound.
 */
export const OUT_PENDING = 20;
/** At most this many synthetic output records in flight to the main thread. */
export const OUT_PENDING_MAX = 256;

// Float64 cell indices (the float64 view covers the whole block; float64 indices 0..15
// overlay int32 cells 0..31, which are reserved for the int32 cells above).
/** vCPU: increment range start, bytes. */
export const F_START = 16;
/** vCPU: increment range end, bytes. */
export const F_END = 17;
/** vCPU: address of the next page. */
export const F_CURSOR = 18;
/** vCPU: completed passes. */
export const F_PASSES = 19;
/** vCPU: pages written. */
export const F_PAGES_WRITTEN = 20;
/** vCPU: random rate, pages per second. */
export const F_RATE = 21;
/** vCPU: random hot fraction. */
export const F_HOT = 22;
/** vCPU: time blocked on postcopy faults, ms. */
export const F_BLOCKTIME = 23;
/** vCPU: postcopy faults that blocked. */
export const F_FAULTS = 24;
/** RAM size in bytes (written at creation; lets a ctl-only VcpuControl validate). */
export const F_RAM_SIZE = 25;
/** vCPU: the seq of the guest's next output record. */
export const F_NEXT_SEQ = 26;

/** Size of the control block in bytes. */
export const CTL_BYTES = 256;

/** Int32 and Float64 views of a control block. */
export interface CtlViews {
  i32: Int32Array;
  f64: Float64Array;
}

/** Views of a control block. */
export function ctlViews(ctl: SharedArrayBuffer): CtlViews {
  if (ctl.byteLength < CTL_BYTES) throw new RangeError("vCPU control block too small");
  return {
    i32: new Int32Array(ctl, 0, CTL_BYTES / 4),
    f64: new Float64Array(ctl, 0, CTL_BYTES / 8),
  };
}

/** Reads the registers from the control block. */
export function readRegs({ i32, f64 }: CtlViews): WorkloadRegs {
  return {
    kind: WORKLOAD_KINDS[Atomics.load(i32, KIND)],
    booted: Atomics.load(i32, BOOTED) === 1,
    start: f64[F_START],
    end: f64[F_END],
    cursor: f64[F_CURSOR],
    passes: f64[F_PASSES],
    pagesWritten: f64[F_PAGES_WRITTEN],
    rate: f64[F_RATE],
    hot: f64[F_HOT],
    prng: [0, 1, 2, 3].map((k) => Atomics.load(i32, PRNG + k) >>> 0),
    nextSeq: f64[F_NEXT_SEQ],
    clock: Atomics.load(i32, CLOCK) === 1,
  };
}

/** Writes the registers into the control block. */
export function writeRegs({ i32, f64 }: CtlViews, regs: WorkloadRegs): void {
  f64[F_START] = regs.start;
  f64[F_END] = regs.end;
  f64[F_CURSOR] = regs.cursor;
  f64[F_PASSES] = regs.passes;
  f64[F_PAGES_WRITTEN] = regs.pagesWritten;
  f64[F_RATE] = regs.rate;
  f64[F_HOT] = regs.hot;
  f64[F_NEXT_SEQ] = regs.nextSeq;
  Atomics.store(i32, CLOCK, regs.clock ? 1 : 0);
  for (let k = 0; k < 4; k++) Atomics.store(i32, PRNG + k, regs.prng[k] | 0);
  Atomics.store(i32, KIND, WORKLOAD_KINDS.indexOf(regs.kind));
  Atomics.store(i32, BOOTED, regs.booted ? 1 : 0);
}

/** Rings the doorbell: wakes a vCPU parked, sleeping (throttle, idle) or waiting for a page. */
export function ringWake(i32: Int32Array): void {
  Atomics.add(i32, WAKE, 1);
  Atomics.notify(i32, WAKE);
}
