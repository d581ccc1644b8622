/**
 * A machine's digests (a test aid, `GET /machine/digest`): SHA-256 of every RAM block in
 * short-lived digest Workers, and on a destination the digest of RAM as it arrived, taken
 * from the vCPU's copy-on-first-write snapshot while the guest already runs.
 *
 * @module
 */
import type { DigestMode, DigestRequest, DigestResult } from "./digest_worker.ts";
import type { SharedGuest } from "./guest_ram.ts";
import type { VcpuControl } from "./vcpu_control.ts";
import { WorkerSet } from "./worker_set.ts";

/** An arrival digest: in progress until `result` settles; `discard` rejects it early. */
interface Arrival {
  result: Promise<DigestResult>;
  settled: boolean;
  discard(): void;
}

/** Rejection of an arrival digest forgotten (clearArrival) before it finished. */
class ArrivalDiscarded extends Error {}

const DIGEST_WORKER = new URL("./digest_worker.ts", import.meta.url);

/** The digests of one machine's RAM. */
export class MachineDigests {
  readonly #shared: SharedGuest;
  readonly #vcpu: VcpuControl;
  readonly #workers = new WorkerSet();
  #arrival: Arrival | null = null;
  /** The digest Worker kept for `now` and `check` digests, and its requests in order. */
  #kept: Worker | null = null;
  readonly #pending: { resolve(r: DigestResult): void; reject(e: Error): void }[] = [];

  /** Digests `shared`'s RAM; `vcpu` keeps the arrival snapshot. */
  constructor(shared: SharedGuest, vcpu: VcpuControl) {
    this.#shared = shared;
    this.#vcpu = vcpu;
  }

  /**
   * Destination, when an incoming migration has loaded: starts hashing RAM as it arrived, in the
   * digest Worker, from the copy-on-first-write snapshot that the engine began (vcpu
   * .beginSnapshot()) before letting the vCPU run; does not wait for the vCPU. When the digest
   * is done the snapshot is ended. The snap buffers stay allocated (the vCPU Worker holds them;
   * their pages committed by copies stay committed and are reused by the next snapshot).
   * Replaces any earlier arrival digest, without ending the snapshot just begun.
   */
  captureArrival(): void {
    this.#discardArrival();
    let discard!: () => void;
    const discarded = new Promise<never>((_, reject) => {
      discard = () => reject(new ArrivalDiscarded("arrival digest discarded"));
    });
    // In the kept digest Worker (a discarded one still finishes there, its answer ignored).
    const result = Promise.race([this.#digestWorker("snapshot", null), discarded]);
    const arrival: Arrival = { result, settled: false, discard };
    this.#arrival = arrival;
    const settle = () => {
      arrival.settled = true;
      if (this.#arrival === arrival) this.#vcpu.endSnapshot();
    };
    result.then(settle, (e) => {
      settle();
      if (!(e instanceof ArrivalDiscarded)) console.error(`arrival digest failed: ${e}`);
    });
  }

  /**
   * Forgets the arrival digest (an outgoing migration starts from this machine, or a new
   * incoming one begins); when it was still being computed, stops it and ends the snapshot.
   */
  clearArrival(): void {
    const arrival = this.#arrival;
    this.#discardArrival();
    if (arrival !== null && !arrival.settled) this.#vcpu.endSnapshot();
  }

  #discardArrival(): void {
    const arrival = this.#arrival;
    this.#arrival = null;
    if (arrival !== null && !arrival.settled) arrival.discard();
  }

  /**
   * SHA-256 of every block, computed in the digest Worker, plus migration-test's check
   * (always on current RAM) when the workload is `increment`. With `auto` and an arrival
   * digest (captureArrival), the blocks are RAM as it arrived (awaited if still in progress),
   * `x-taken: "arrival"`; otherwise, and with `now`, RAM as it is (meaningful with the vCPU
   * parked), `x-taken: "now"`. Rejects if the arrival digest failed.
   */
  async digest(at: "auto" | "now" = "auto"): Promise<DigestResult> {
    const regs = this.#vcpu.registers();
    const check = regs.workload === "increment" ? { start: regs.start, end: regs.end } : null;
    const arrival = at === "auto" ? this.#arrival : null;
    if (arrival !== null) {
      const current = check === null ? null : this.#digestWorker("check", check);
      try {
        const { blocks } = await arrival.result;
        const checked = await current;
        return {
          blocks,
          ...(checked === null ? {} : { "x-increment-check": checked["x-increment-check"] }),
          "x-taken": "arrival",
        };
      } catch (e) {
        await current?.catch(() => {});
        if (!(e instanceof ArrivalDiscarded)) throw e;
      }
    }
    return { ...(await this.#digestWorker("now", check)), "x-taken": "now" };
  }

  /**
   * A digest in the machine's kept digest Worker (started on first use; it answers in order):
   * a Worker per request cost every `GET /machine/digest` a Worker's start-up.
   */
  #digestWorker(mode: DigestMode, check: DigestRequest["check"]): Promise<DigestResult> {
    const request: DigestRequest = { guest: this.#shared, mode, check };
    if (this.#kept === null) {
      const worker = new Worker(DIGEST_WORKER, { type: "module" });
      this.#workers.add(worker);
      const pending = this.#pending;
      worker.onmessage = (e: MessageEvent<DigestResult>) => pending.shift()?.resolve(e.data);
      worker.onerror = (e: ErrorEvent) => {
        e.preventDefault();
        this.#kept = null;
        this.#workers.drop(worker);
        const error = new Error(`digest_worker.ts: ${e.message}`);
        for (const p of pending.splice(0)) p.reject(error);
      };
      this.#kept = worker;
    }
    const kept = this.#kept;
    return new Promise<DigestResult>((resolve, reject) => {
      this.#pending.push({ resolve, reject });
      kept.postMessage(request);
    });
  }

  /** Forgets the arrival digest and stops every digest Worker. */
  dispose(): void {
    this.#discardArrival();
    this.#kept = null;
    this.#workers.terminateAll();
    const error = new Error("the machine was disposed");
    for (const p of this.#pending.splice(0)) p.reject(error);
  }
}
