/**
 * Where the guest's output records go on their way to `GET /machine/output`: into the log, or
 * first through a tap (COLO: the primary holds them for the output compare, the secondary
 * tells its primary about them). Records carry the device-state generation of the guest that
 * wrote them (vcpu_ctl.ts GEN): one from a guest that a load replaced since (a COLO checkpoint
 * on the secondary) is dropped, and the first of a new generation drops the log's records from
 * its seq on, which the replaced guest wrote. A COLO secondary also takes the primary's records
 * that a checkpoint carried ({@link GuestOutput.adopt}).
 *
 * @module
 */
import { makeRecord, OutputLog, type OutputRecord } from "../wasm/output_log.ts";

/** A record as the vCPU Worker posts it. */
export interface VcpuOutput {
  seq: number;
  stream: "stdout" | "stderr";
  bytes: Uint8Array;
  /** Absent: the current generation (a WebAssembly guest). */
  gen?: number;
}

/** What a tap gets: the record as clients will see it, and its bytes. */
export type OutputTap = (record: OutputRecord, bytes: Uint8Array) => void;

/** The guest's output path (see the module doc). */
export class GuestOutput {
  /** What clients read. */
  readonly log = new OutputLog();
  /** Set while COLO runs (colo_output.ts); null: straight to the log. */
  tap: OutputTap | null = null;
  /**
   * COLO's arbiter fenced this side (domain/colo_arbiter.ts): the records its guest writes go
   * nowhere (its guest stops; the side that runs on writes them). Lifted by a new COLO session
   * or the operator's cont.
   */
  fenced = false;
  #gen = 0;

  /**
   * COLO secondary: the primary's `records` (below `next`) take the place of this side's own
   * with the same seq. With `gen` (a checkpoint loaded device-state generation `gen`, whose
   * guest runs from `next` on) the replaced guest's records from `next` on go too, and any of
   * its records still in flight are dropped when they come.
   */
  adopt(
    records: readonly { seq: number; stream: "stdout" | "stderr"; bytes: Uint8Array }[],
    next: number,
    gen: number | null,
  ): void {
    if (gen !== null && gen > this.#gen) {
      this.#gen = gen;
      this.log.rollback(next);
    }
    this.log.merge(records.map((r) => makeRecord(r.seq, r.stream, r.bytes)));
  }

  /** A record from the vCPU Worker. */
  take(m: VcpuOutput): void {
    if (this.fenced) return;
    const gen = m.gen ?? this.#gen;
    if (gen < this.#gen) return;
    if (gen > this.#gen) {
      this.#gen = gen;
      this.log.rollback(m.seq);
    }
    const record = makeRecord(m.seq, m.stream, m.bytes);
    if (this.tap) this.tap(record, m.bytes);
    else this.log.append(record);
  }
}
