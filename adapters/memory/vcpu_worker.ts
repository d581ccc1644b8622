/**
 * The vCPU Worker: receives a SharedGuest, answers "ready", then runs its workload while the
 * runstate is `running` and parks (Atomics.wait on the doorbell) otherwise, until asked to
 * shut down. Registers live in locals while executing; counters are published to the control
 * block after every chunk, everything at each park. The output records a step wrote are numbered
 * from the `nextSeq` register and posted to the main thread (the same message as a WebAssembly
 * guest's writes) before the next chunk, so a stopped guest's device state carries the seq of
 * the next record: a migrated or checkpointed guest continues the numbering.
 *
 * @module
 */

import { guestMemory, type SharedGuest } from "./guest_ram.ts";
import {
  BOOTED,
  type CtlViews,
  ctlViews,
  F_BLOCKTIME,
  F_CURSOR,
  F_FAULTS,
  F_NEXT_SEQ,
  F_PAGES_WRITTEN,
  F_PASSES,
  FAULT_PAGE,
  FAULT_SEQ,
  FAULT_WAITING,
  GEN,
  OUT_PENDING,
  OUT_PENDING_MAX,
  PARKED,
  POSTCOPY,
  PRNG,
  readRegs,
  RUN_STATES,
  RUNNING,
  RUNSTATE,
  SHUTDOWN,
  SNAPSHOT,
  STARTED,
  THROTTLE,
  WAKE,
  writeRegs,
} from "./vcpu_ctl.ts";
import { type GuestMemory, WORKLOAD_STEPS, type WorkloadRegs } from "./workload.ts";
import { runWasmVcpu, type WasmVcpuMessage } from "../wasm/wasm_vcpu.ts";
import { publishTrap } from "../wasm/wasm_shared.ts";
import { DiskWriter } from "../disk/disk_writer.ts";

const encoder = new TextEncoder();

/** Pages per increment chunk between runstate checks (about 10 µs of work). */
const INCREMENT_CHUNK = 1024;
/** Pages per random chunk between runstate checks (64 bytes each, tens of µs). */
const RANDOM_CHUNK = 256;
/** Throttle slice: the vCPU sleeps `throttle`% of each slice. */
const SLICE_MS = 10;

function executing(i32: Int32Array): boolean {
  return Atomics.load(i32, RUNSTATE) === RUNNING && Atomics.load(i32, SHUTDOWN) === 0;
}

/** Sleeps up to `ms`, waking early when the runstate changes (doorbell). */
function sleepFor(i32: Int32Array, ms: number): void {
  const deadline = performance.now() + ms;
  for (;;) {
    const gen = Atomics.load(i32, WAKE);
    const left = deadline - performance.now();
    if (left <= 0 || !executing(i32)) return;
    Atomics.wait(i32, WAKE, gen, left);
  }
}

/** Publishes the fast-changing registers (plain stores: readers synchronise on PARKED). */
function publish({ i32, f64 }: CtlViews, regs: WorkloadRegs): void {
  f64[F_CURSOR] = regs.cursor;
  f64[F_PASSES] = regs.passes;
  f64[F_PAGES_WRITTEN] = regs.pagesWritten;
  f64[F_NEXT_SEQ] = regs.nextSeq;
  i32[BOOTED] = regs.booted ? 1 : 0;
  for (let k = 0; k < 4; k++) i32[PRNG + k] = regs.prng[k];
}

/** Postcopy: publishes a fault for `page` and blocks until it is received or the vCPU must stop. */
function awaitPage({ i32, f64 }: CtlViews, received: Uint8Array, page: number): void {
  const t0 = performance.now();
  Atomics.store(i32, FAULT_PAGE, page);
  f64[F_FAULTS] += 1;
  Atomics.add(i32, FAULT_SEQ, 1);
  Atomics.notify(i32, FAULT_SEQ);
  Atomics.store(i32, FAULT_WAITING, 1);
  for (;;) {
    const gen = Atomics.load(i32, WAKE);
    if (Atomics.load(received, page) !== 0) break;
    if (!executing(i32) || Atomics.load(i32, POSTCOPY) === 0) break;
    Atomics.wait(i32, WAKE, gen, 1000);
  }
  Atomics.store(i32, FAULT_WAITING, 0);
  f64[F_BLOCKTIME] += performance.now() - t0;
}

/**
 * The vCPU's view of the snapshot: `views` are the snap buffers' byte views; `on` is the
 * SNAPSHOT flag as the vCPU last saw it.
 */
interface SnapState {
  views: Uint8Array[];
  on: boolean;
}

/**
 * Reads the SNAPSHOT flag (once per chunk, just before the step: the step functions then pay
 * one byte load per page only while it is on) and points `mem.snap` at the snap buffers or
 * null. When the vCPU sees the flag go off it zeroes `snapCopied`, after its last copy, so the
 * marks do not outlive a snapshot (a snapshot-mode digest started before the next
 * beginSnapshot, with the vCPU parked, then never reads stale marks).
 */
function syncSnapshot(i32: Int32Array, mem: GuestMemory, snap: SnapState): void {
  const on = Atomics.load(i32, SNAPSHOT) === 1;
  if (snap.on && !on) mem.snapCopied.fill(0);
  snap.on = on;
  mem.snap = on ? snap.views : null;
}

/** Runs the workload until the runstate leaves `running` (or shutdown). */
function execute(
  ctl: CtlViews,
  regs: WorkloadRegs,
  mem: GuestMemory,
  received: Uint8Array,
  snap: SnapState,
  disk: DiskWriter | null,
  post: (m: WasmVcpuMessage) => void,
) {
  const i32 = ctl.i32;
  const gen = Atomics.load(i32, GEN);
  const step = WORKLOAD_STEPS[regs.kind];
  // random always, increment with a rate (0: as fast as it can, as QEMU's migration-test).
  const paced = regs.kind === "random" || regs.rate > 0;
  const burst = Math.max(1, regs.rate / 100);
  // A paced guest wakes when a batch is due (up to a chunk, at most 10 ms of its rate), not
  // for every page: waking 1000 times a second cost a paced guest 50 ms of CPU per second
  // whatever its rate (5000 pages/s measured), batches of 10 ms cost 5; the rate is the same.
  const batch = Math.min(burst, regs.kind === "random" ? RANDOM_CHUNK : INCREMENT_CHUNK);
  let tokens = 0;
  let last = performance.now();
  let sliceStart = last;
  for (;;) {
    if (!executing(i32)) return;
    const pct = Atomics.load(i32, THROTTLE);
    if (pct > 0 && performance.now() - sliceStart >= ((100 - pct) * SLICE_MS) / 100) {
      sleepFor(i32, (pct * SLICE_MS) / 100);
      sliceStart = last = performance.now();
    }
    if (regs.kind === "idle") {
      const gen = Atomics.load(i32, WAKE);
      if (executing(i32)) Atomics.wait(i32, WAKE, gen, 1000);
      continue;
    }
    let max = INCREMENT_CHUNK;
    if (paced) {
      const now = performance.now();
      tokens = Math.min(burst, tokens + ((now - last) * regs.rate) / 1000);
      last = now;
      if (tokens < batch) {
        sleepFor(i32, Math.max(1, ((batch - tokens) * 1000) / regs.rate));
        continue;
      }
      max = Math.min(regs.kind === "random" ? RANDOM_CHUNK : INCREMENT_CHUNK, Math.floor(tokens));
    }
    mem.received = Atomics.load(i32, POSTCOPY) === 1 ? received : null;
    syncSnapshot(i32, mem, snap);
    tokens -= step(regs, mem, max);
    for (const text of mem.out) {
      // Backpressure: while the main thread has OUT_PENDING_MAX records to take, wait for it
      // (a stop or shutdown ends the wait: the record is posted, the guest then parks).
      for (;;) {
        const pending = Atomics.load(i32, OUT_PENDING);
        if (pending < OUT_PENDING_MAX || !executing(i32)) break;
        Atomics.wait(i32, OUT_PENDING, pending, 50);
      }
      const bytes = encoder.encode(text);
      Atomics.add(i32, OUT_PENDING, 1);
      post({ kind: "output", seq: regs.nextSeq++, stream: "stdout", bytes, gen, counted: true });
    }
    mem.out.length = 0;
    disk?.tick(performance.now());
    publish(ctl, regs);
    if (mem.fault >= 0) awaitPage(ctl, received, mem.fault);
  }
}

/**
 * The vCPU loop: parks while the runstate is not `running`; otherwise reloads the registers
 * from the control block (device state may have been loaded meanwhile) and executes.
 * Returns when SHUTDOWN is set.
 */
function runVcpu(guest: SharedGuest, post: (m: WasmVcpuMessage) => void): void {
  const ctl = ctlViews(guest.ctl);
  const i32 = ctl.i32;
  const mem = guestMemory(guest);
  const received = new Uint8Array(guest.received);
  const snap: SnapState = { views: guest.snap.map((buf) => new Uint8Array(buf)), on: false };
  const disk = guest.drives?.length && guest.diskWrites
    ? new DiskWriter(guest.drives, guest.diskWrites)
    : null;
  Atomics.store(i32, STARTED, 1);
  while (Atomics.load(i32, SHUTDOWN) === 0) {
    const gen = Atomics.load(i32, WAKE);
    if (Atomics.load(i32, RUNSTATE) !== RUNNING) {
      Atomics.wait(i32, WAKE, gen, 1000);
      continue;
    }
    Atomics.store(i32, PARKED, 0);
    if (executing(i32)) {
      const regs = readRegs(ctl);
      execute(ctl, regs, mem, received, snap, disk, post);
      writeRegs(ctl, regs);
    }
    Atomics.store(i32, PARKED, 1);
    Atomics.notify(i32, PARKED);
    // After PARKED=1 (Dekker with VcpuControl.endSnapshot, which stores the flag and then
    // reads PARKED): either it sees us parked and zeroes the marks, or we see the flag off.
    syncSnapshot(i32, mem, snap);
  }
  disk?.close();
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<SharedGuest>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e) => {
  scope.onmessage = null;
  const guest = e.data;
  if (guest.wasm) {
    // A WebAssembly guest: its own loop; a module that fails to instantiate is reported.
    const incoming = RUN_STATES[Atomics.load(ctlViews(guest.ctl).i32, RUNSTATE)] === "inmigrate";
    let started = false;
    try {
      runWasmVcpu(guest, (m) => scope.postMessage(m), incoming, () => {
        started = true;
        scope.postMessage("ready");
      });
    } catch (err) {
      if (started) {
        publishTrap(guest.wasm.trap, String(err));
        scope.postMessage({ kind: "trap" } satisfies WasmVcpuMessage);
      } else scope.postMessage({ error: String(err) });
    }
    scope.close();
    return;
  }
  scope.postMessage("ready");
  runVcpu(e.data, (m) => scope.postMessage(m));
  scope.close();
};
