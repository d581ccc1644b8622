/**
 * The agent's COLO status as QEMU's `query-colo-status` reports it (mode, last-mode, reason),
 * kept on the main thread from what the data-path Workers say (`colo` messages), the
 * COLO_EXIT event, and the way a `lost-heartbeat` reaches the side that is in COLO. An agent
 * is in COLO on one side at a time: primary (its outgoing migration) or secondary (its
 * incoming one). With `--colo-arbiter`, the COLO reports drive the arbiter too
 * (colo_arbiter.ts), whose verdicts reach the side in COLO as a lost-heartbeat with a verdict.
 *
 * @module
 */
import { DomainError } from "./errors.ts";
import type { EventBus } from "./event_bus.ts";
import type { FerryEventMap } from "./events.ts";
import type { ColoRecord } from "./wire/colo_records.ts";
import type { ArbiterStatus, ColoArbiter } from "./colo_arbiter.ts";

/** QEMU's COLOMode, with `none` outside COLO. */
export type ColoMode = "primary" | "secondary" | "none";

/** QEMU's COLOExitReason: why COLO was left (`processing`: a failover is under way). */
export type ColoReason = "none" | "request" | "error" | "processing";

/** `GET /colo`: QEMU's COLOStatus. */
export interface ColoStatus {
  mode: ColoMode;
  "last-mode": ColoMode;
  reason: ColoReason;
  /** With `--colo-arbiter`: where this side's arbiter stands. */
  "x-arbiter"?: ArbiterStatus;
}

/** An arbiter's verdict for the side in COLO (colo_arbiter.ts); absent: the operator's. */
export type ColoVerdict = "won" | "lost";

/** What a data-path Worker says about COLO (see messages.ts). */
export type ColoReport =
  /** The side entered COLO. */
  | { t: "colo"; what: "enter"; mode: "primary" | "secondary" }
  /** The link went silent: the side holds and waits for lost-heartbeat. */
  | { t: "colo"; what: "hold" }
  /** The side left COLO (COLO_EXIT). */
  | { t: "colo"; what: "exit"; reason: "request" | "error" }
  /**
   * Primary: the secondary's output record `seq` (SHA-256 `digest`, hex), read after `epoch`
   * checkpoints were loaded (output_compare.ts).
   */
  | { t: "colo"; what: "output"; seq: number; digest: string; epoch: number }
  /**
   * Primary: checkpoint `epoch` was loaded; the guest's next output record then was `nextSeq`
   * (null: unknown, a WebAssembly guest).
   */
  | { t: "colo"; what: "checkpoint"; epoch: number; nextSeq: number | null }
  /**
   * Secondary: the primary's output records below `next` (COLO_RECORDS), to hold in place of
   * its own: applied with a checkpoint whose guest (device-state generation `gen`) runs from
   * `next` on, or (`gen` null) ones the primary released before COLO began.
   */
  | { t: "colo"; what: "records"; next: number; gen: number | null; records: ColoRecord[] };

/** The agent's COLO status (see the module doc). */
export class ColoState {
  #mode: ColoMode = "none";
  #lastMode: ColoMode = "none";
  #reason: ColoReason = "none";
  /** Whether this agent's x-colo is on, shared with the destination Worker. */
  readonly enabled = new Int32Array(new SharedArrayBuffer(4));
  readonly #events: EventBus<FerryEventMap>;
  /** Delivers a lost-heartbeat (with an arbiter's verdict) to the Worker of the side in COLO. */
  #deliver: ((mode: "primary" | "secondary", verdict?: ColoVerdict) => boolean) | null = null;
  #arbiter: ColoArbiter | null = null;
  /** Hears every report after this status took it (the output compare, colo_output.ts). */
  #listener: ((m: ColoReport) => void) | null = null;

  /** A status that publishes COLO_EXIT on `events`. */
  constructor(events: EventBus<FerryEventMap>) {
    this.#events = events;
  }

  /** query-colo-status. */
  status(): ColoStatus {
    const s: ColoStatus = { mode: this.#mode, "last-mode": this.#lastMode, reason: this.#reason };
    if (this.#arbiter) s["x-arbiter"] = this.#arbiter.status();
    return s;
  }

  /** `--colo-arbiter`: who decides which side runs on when the two lose each other. */
  arbitrate(arbiter: ColoArbiter): void {
    this.#arbiter = arbiter;
  }

  /** Whether an arbiter decides (the data-path Workers hold instead of running on). */
  get arbitrated(): boolean {
    return this.#arbiter !== null;
  }

  /** The arbiter's verdict, to the side in COLO. */
  verdict(v: ColoVerdict): void {
    if (this.#mode !== "none") this.#deliver?.(this.#mode, v);
  }

  /** The x-colo capability changed (the destination Worker reads it when a stream asks). */
  setEnabled(on: boolean): void {
    Atomics.store(this.enabled, 0, on ? 1 : 0);
  }

  /** Sets how a lost-heartbeat reaches the Workers (the agent wires both sides). */
  route(deliver: (mode: "primary" | "secondary", verdict?: ColoVerdict) => boolean): void {
    this.#deliver = deliver;
  }

  /** Sets who hears every report after this status took it. */
  listen(f: (m: ColoReport) => void): void {
    this.#listener = f;
  }

  /** A Worker's report. */
  report(m: ColoReport): void {
    this.#take(m);
    this.#listener?.(m);
  }

  #take(m: ColoReport): void {
    if (m.what === "output" || m.what === "checkpoint" || m.what === "records") return;
    if (m.what === "enter") {
      // A first enter begins a session; another one (the peer speaks again) resumes it.
      if (this.#mode === "none") this.#arbiter?.enter();
      else this.#arbiter?.peerBack();
      this.#mode = m.mode;
      this.#reason = "none";
    } else if (m.what === "hold") {
      if (this.#mode !== "none") {
        this.#reason = "processing";
        void this.#arbiter?.peerLost();
      }
    } else if (this.#mode !== "none") {
      this.#arbiter?.left();
      const mode = this.#mode;
      this.#lastMode = mode;
      this.#mode = "none";
      this.#reason = m.reason;
      this.#events.publish("COLO_EXIT", { mode, reason: m.reason });
    }
  }

  /** The agent closes: the arbiter lets its lease go. */
  async close(): Promise<void> {
    await this.#arbiter?.close();
  }

  /** x-colo-lost-heartbeat: refused (409) unless this agent is in COLO. */
  lostHeartbeat(): void {
    const mode = this.#mode;
    if (mode === "none" || !this.#deliver?.(mode)) {
      throw new DomainError("wrong-state", "VM is not in COLO mode");
    }
  }
}
