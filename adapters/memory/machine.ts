/**
 * The machine (the guest) as the main thread sees it: RAM on SharedArrayBuffers, a vCPU
 * Worker running the workload, QEMU-like `stop` / `cont`, `info` and a digest for tests.
 *
 * @module
 */

import type { DigestResult } from "./digest_worker.ts";
import {
  allocateGuest,
  prepareGuest,
  prepJobs,
  type RamFill,
  type RamPrep,
  ramSize,
  type SharedGuest,
  usedBytes,
  usedPages,
} from "./guest_ram.ts";
import { adviseHugePages } from "./huge_pages.ts";
import { MachineDigests } from "./machine_digests.ts";
import { WorkerSet } from "./worker_set.ts";
import { PAGE_SIZE, type RamBlockLayout, type RamBlockSpec } from "./layout.ts";
import { applyRamBacking, type RamAdvice, type RamBacking } from "./ram_backing.ts";
import { type RamBackingInfo, RamBackingReport } from "./ram_backing_info.ts";
import { ctlViews, OUT_PENDING, ringWake, type RunState, SHUTDOWN } from "./vcpu_ctl.ts";
import { initControl, VcpuControl, type VcpuRegisters } from "./vcpu_control.ts";
import { resolveWorkload, type WorkloadSpec } from "./workload_spec.ts";
import {
  type DriveInfo,
  drivesInfo,
  type DriveSpec,
  prepareDrive,
  setDrivesActive,
} from "../disk/drive.ts";
import { type GuestSpec, loadGuest } from "../wasm/wasm_guest.ts";
import { WasmModuleError } from "../wasm/wasm_binary.ts";
import { OutputLog } from "../wasm/output_log.ts";
import { GuestOutput } from "./guest_output.ts";
import { trapMessage } from "../wasm/wasm_shared.ts";
import {
  type GuestInfo,
  guestInfoOf,
  type InputRefusal,
  inputRefusal,
  offerInput,
} from "./guest_stdin.ts";
import type { WasmVcpuMessage } from "../wasm/wasm_vcpu.ts";

export { parseSize } from "./guest_ram.ts";
export { parseWorkload } from "./workload_spec.ts";
export { parseGuest } from "../wasm/wasm_guest.ts";
export { OutputLog, WasmModuleError };
export type { GuestInfo, GuestSpec, InputRefusal };
export type {
  DigestResult,
  RamBacking,
  RamBackingInfo,
  RamFill,
  RunState,
  SharedGuest,
  WorkloadSpec,
};

/** Options of Machine.create (the `--ram`, `--fill`, `--workload`, `-S`, `--incoming` flags). */
export interface MachineOptions {
  blocks: RamBlockSpec[];
  fill: RamFill;
  workload: WorkloadSpec;
  /** QEMU's -S: start paused. */
  startPaused: boolean;
  /** Destination: RAM pre-touched instead of filled, runstate `inmigrate`. */
  incoming: boolean;
  /** Which pages back RAM (resolveRamBacking); default: 4 KiB pages, `--huge-pages off`. */
  backing?: RamBacking;
  /** `--guest wasm:`: a WebAssembly program instead of the workload. */
  guest?: GuestSpec;
  /**
   * Snapshot buffers for a copy-on-first-write snapshot, so that a destination can keep the
   * digest of RAM as it arrived (`--arrival-digest`). Without them (the default) the guest has
   * one copy of RAM and no snapshot can begin.
   */
  arrivalDigest?: boolean;
  /** `--drive`: raw disk images (created when missing; see adapters/disk/drive.ts). */
  drives?: DriveSpec[];
}

const OFF: RamBacking = {
  mode: "off",
  pageSize: PAGE_SIZE,
  thp: null,
  reason: "--huge-pages off",
  probe: null,
  fallback: false,
};

/** `GET /machine`. */
export interface MachineInfo {
  runstate: RunState;
  "ram-size": number;
  "page-size": number;
  /** `used`: bytes in use (a WebAssembly guest's memory grows up to `size`). */
  blocks: { name: string; size: number; used: number }[];
  workload: VcpuRegisters;
  "cpu-throttle-percentage": number;
  "x-ram-backing": RamBackingInfo;
  "x-guest"?: GuestInfo;
  /** The drives (`--drive`): id, image file, size. */
  drives: DriveInfo[];
}

/** How long stop() waits for the vCPU to park before failing. */
const PARK_TIMEOUT_MS = 10_000;
/** Guests smaller than this are filled in the calling thread (Workers cost ~50 ms to start). */
const PARALLEL_PREP_BYTES = 64 << 20;
/**
 * At most this many preparation Workers. Pre-touching 1 GiB, measured 2026-12-06 (kernel 6.18,
 * THP madvise, 2 cores, others busy): 4 KiB pages 3.3–3.9 s in one thread, 1.9–3.2 s in two;
 * huge pages 80–2086 ms in one, 47–917 ms in two (the spread is the host: memory it has not
 * backed yet costs ~1–2 s per GiB whatever the page size). Two Workers help on both.
 */
const MAX_PREP_WORKERS = 4;

/** The guest: owns its SharedArrayBuffers and vCPU Worker. Dispose it when done. */
export class Machine {
  /** Blocks in the flat page space. */
  readonly layout: RamBlockLayout[];
  /** The structured-cloneable handle for other Workers. */
  readonly shared: SharedGuest;
  /** Control of the vCPU. */
  readonly vcpu: VcpuControl;
  /** Which pages back RAM, as decided at start. */
  readonly backing: RamBacking;
  /** What RAM was advised at start. */
  readonly advice: RamAdvice;
  readonly #workers = new WorkerSet();
  #vcpuError: string | null = null;
  readonly #digests: MachineDigests;
  /** x-ram-backing, with its cached smaps reading. */
  readonly #ramReport: RamBackingReport;
  /** The guest's output records, and the tap COLO puts before them (guest_output.ts). */
  readonly guestOutput = new GuestOutput();
  /** The guest's output records (`GET /machine/output`). */
  readonly output: OutputLog = this.guestOutput.log;

  private constructor(
    shared: SharedGuest,
    vcpu: VcpuControl,
    backing: RamBacking,
    advice: RamAdvice,
  ) {
    this.shared = shared;
    this.layout = shared.layout;
    this.vcpu = vcpu;
    this.backing = backing;
    this.advice = advice;
    this.#digests = new MachineDigests(shared, vcpu);
    this.#ramReport = new RamBackingReport(shared, backing, advice);
  }

  /**
   * Allocates RAM, advises it as `backing` says (before any page is touched, so first touches
   * fault in huge pages), fills (or, when incoming, pre-touches) it, sets the runstate
   * (`inmigrate`, else `paused` with startPaused, else `running`) and starts the vCPU Worker.
   * Throws a RangeError on a bad layout or a workload range outside the RAM.
   */
  static async create(opts: MachineOptions): Promise<Machine> {
    const wasm = opts.guest
      ? (await loadGuest(opts.guest, opts.blocks.reduce((n, b) => n + b.size, 0))).shared
      : undefined;
    if (wasm && opts.blocks.length !== 1) {
      throw new WasmModuleError("a WebAssembly guest has one RAM block (no --ram-block)");
    }
    const shared = allocateGuest(opts.blocks, {
      snapshot: opts.arrivalDigest ?? false,
      wasm,
    });
    // A destination's drives wait for its guest (domain/block_activation.ts).
    shared.drives = (opts.drives ?? []).map((d) => prepareDrive(d, !opts.incoming));
    shared.lateBlockActivate = new Int32Array(new SharedArrayBuffer(4));
    if (opts.workload.kind !== "idle") shared.diskWrites = opts.workload.disk ?? 0;
    const size = ramSize(shared);
    const seed = Array.from(crypto.getRandomValues(new Uint32Array(4)));
    const regs = resolveWorkload(opts.workload, size, seed);
    const runstate = opts.incoming ? "inmigrate" : opts.startPaused ? "paused" : "running";
    const backing = opts.backing ?? OFF;
    const advice = applyRamBacking(shared.ram, backing);
    shared.ramPageSize = backing.pageSize;
    // The copy-on-first-write snapshot stays on 4 KiB pages whatever RAM uses (MADV_NOHUGEPAGE,
    // which also holds under THP mode `always`): it is sparse, a page per first write. Measured
    // 2026-12-06 (kernel 6.18, THP madvise), 2000 first writes at random into a 256 MiB snapshot
    // buffer: 4 KiB pages 15 MiB resident, 53–58 µs per write; huge pages 254 MiB resident (a
    // 2 MiB page per write), 85–120 µs per write.
    for (const snap of shared.snap) adviseHugePages(snap, false);
    const machine = new Machine(
      shared,
      initControl(shared, regs, runstate, size),
      backing,
      advice,
    );
    try {
      await machine.#prepare(opts.incoming ? "touch" : wasm ? "zero" : opts.fill);
      // A zero fill and a pre-touch leave every page zero; the other fills write them all
      // (and so may a WebAssembly program's data segments).
      if (!opts.incoming && (opts.fill !== "zero" || wasm)) {
        // A WebAssembly guest's pages past its memory's size are zero until it grows.
        new Uint8Array(shared.written).fill(1, 0, wasm ? usedPages(shared, 0) : undefined);
      }
      const vcpuWorker = await machine.#workers.spawn<string | { error: string }>(
        new URL("./vcpu_worker.ts", import.meta.url),
        shared,
      );
      if (typeof vcpuWorker.answer !== "string") {
        throw new WasmModuleError(vcpuWorker.answer.error);
      }
      vcpuWorker.worker.onmessage = (e: MessageEvent<WasmVcpuMessage>) => machine.#onVcpu(e.data);
      vcpuWorker.worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        machine.#vcpuError = e.message;
        console.error(`vCPU worker failed: ${e.message}`);
      };
    } catch (e) {
      await machine.dispose();
      throw e;
    }
    return machine;
  }

  #onVcpu(m: WasmVcpuMessage): void {
    if (m.kind === "output" && m.counted) {
      const i32 = ctlViews(this.shared.ctl).i32;
      Atomics.sub(i32, OUT_PENDING, 1);
      Atomics.notify(i32, OUT_PENDING);
    }
    if (m.kind === "output") this.guestOutput.take(m);
    else if (m.kind === "trap") {
      console.error(`wasm guest trapped: ${trapMessage(this.shared.wasm!.trap)}`);
    } else console.error(`wasm guest exited with code ${m.code}`);
  }

  /** A WebAssembly guest's module and exit, or null for the synthetic workloads. */
  guestInfo(): GuestInfo | null {
    return guestInfoOf(this.shared);
  }

  /** Appends `bytes` to the guest's stdin; null when done, else why not (guest_stdin.ts). */
  input(bytes: Uint8Array): InputRefusal | null {
    return offerInput(this.shared, () => this.vcpu.runstate, bytes);
  }

  /**
   * Why {@link input} refuses `bytes` now, writing nothing (COLO: engine/colo_input.ts), with
   * `waiting` more bytes of input on their way to the guest.
   */
  inputRefusal(bytes: Uint8Array, waiting = 0): InputRefusal | null {
    return inputRefusal(this.shared, bytes, waiting);
  }

  /** Fills or pre-touches RAM, spread over Workers when the guest is big. */
  async #prepare(prep: RamPrep): Promise<void> {
    const cores = Math.min(navigator.hardwareConcurrency || 1, MAX_PREP_WORKERS);
    if (ramSize(this.shared) < PARALLEL_PREP_BYTES || cores < 2) {
      return prepareGuest(this.shared, prep);
    }
    const jobs = prepJobs(this.shared, prep, cores);
    const groups = Array.from({ length: cores }, (_, k) => jobs.filter((_, i) => i % cores === k));
    const spawned = groups.filter((g) => g.length > 0).map((g) =>
      this.#workers.spawn(new URL("./prep_worker.ts", import.meta.url), g)
    );
    for (const { worker } of await Promise.all(spawned)) this.#workers.drop(worker);
  }

  /** The current runstate. */
  get runstate(): RunState {
    return this.vcpu.runstate;
  }

  /** Set when the vCPU Worker died of an error (a bug); null otherwise. */
  get vcpuError(): string | null {
    return this.#vcpuError;
  }

  /** QEMU `stop`: running → paused; resolves once the vCPU is parked. */
  async stop(): Promise<void> {
    if (this.vcpu.runstate === "running") this.vcpu.setRunstate("paused");
    if (!(await this.vcpu.waitParkedAsync(PARK_TIMEOUT_MS))) {
      throw new Error(`vCPU did not park within ${PARK_TIMEOUT_MS} ms`);
    }
  }

  /** QEMU `cont`: → running (the vCPU wakes at once). */
  cont(): void {
    setDrivesActive(this.shared.drives, true); // QMP cont activates the drives first
    this.vcpu.setRunstate("running");
  }

  /** `GET /machine`: runstate, RAM layout, workload registers, throttle, RAM backing. */
  info(): MachineInfo {
    return {
      runstate: this.runstate,
      "ram-size": ramSize(this.shared),
      "page-size": PAGE_SIZE,
      blocks: this.layout.map(({ name, size }, b) => ({
        name,
        size,
        used: usedBytes(this.shared, b),
      })),
      workload: this.vcpu.registers(),
      "cpu-throttle-percentage": this.vcpu.throttle,
      "x-ram-backing": this.ramBackingInfo(),
      ...(this.shared.wasm ? { "x-guest": this.guestInfo()! } : {}),
      drives: drivesInfo(this.shared.drives ?? []),
    };
  }

  /** The page size asked for RAM, why, and the bytes huge pages back (see hugeBytes). */
  ramBackingInfo(): RamBackingInfo {
    return this.#ramReport.info();
  }

  /** Bytes of RAM backed by huge pages now (see RamBackingReport.hugeBytes). */
  hugeBytes(): number | null {
    return this.#ramReport.hugeBytes();
  }

  /**
   * Destination, when an incoming migration has loaded: starts hashing RAM as it arrived
   * (see MachineDigests.captureArrival).
   */
  captureArrival(): void {
    this.#digests.captureArrival();
  }

  /** Forgets the arrival digest (see MachineDigests.clearArrival). */
  clearArrival(): void {
    this.#digests.clearArrival();
  }

  /** SHA-256 of every block, as it arrived or as it is now (see MachineDigests.digest). */
  digest(at: "auto" | "now" = "auto"): Promise<DigestResult> {
    return this.#digests.digest(at);
  }

  /** Stops the vCPU Worker and any helper Worker. Safe to call twice. */
  dispose(): Promise<void> {
    this.#digests.dispose();
    const { i32 } = ctlViews(this.shared.ctl);
    Atomics.store(i32, SHUTDOWN, 1);
    ringWake(i32);
    this.#workers.terminateAll();
    return Promise.resolve();
  }
}
