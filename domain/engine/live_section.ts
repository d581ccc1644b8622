/**
 * What moves in a migration, as sections in the style of QEMU's SaveVMHandlers: each section
 * (RAM, the device state; later a disk or COLO's extra state) is an object the phases drive
 * through the same calls, so a new kind of state is a new section, not a branch in a phase.
 * A `live` section moves while the guest runs (setup, passes under the rate limit, the rest
 * at the switchover); a `full` one moves once, whole, in the completion (QEMU's vmstate).
 * The destination's side is {@link SectionLoader}: it dispatches a stream's section records
 * by section id (docs/wire-format.md, "Sections").
 *
 * @module
 */
import type { FrameReader } from "../wire/frame_reader.ts";
import { WireError } from "../wire/wire_error.ts";

/** Bytes a section still has to send, split as QEMU's state_pending_* split them. */
export interface PendingBytes {
  /** Bytes that must move while the guest is stopped (before the switchover). */
  mustPrecopy: number;
  /** Bytes that may move after it, in postcopy (the guest running on the destination). */
  postcopyable: number;
  /**
   * What sending all of it costs on the wire: the bytes themselves, or with page encodings
   * (XBZRLE, compression) what a page cost over the last pass.
   */
  wire: number;
}

/** Nothing pending. */
export const NOTHING_PENDING: Readonly<PendingBytes> = Object.freeze({
  mustPrecopy: 0,
  postcopyable: 0,
  wire: 0,
});

/** Where a section writes its frames: the main stream, or a package being built. */
export interface FrameSink {
  /** Appends one whole frame. */
  append(frame: Uint8Array): Promise<void>;
}

/** A FrameSink that can also build a frame in place (the session's PageSender). */
export interface StagingSink extends FrameSink {
  /**
   * Stages a frame of at most `max` bytes that `fill` writes, synchronously, at the start of
   * the view it is given; `fill` returns the frame's length.
   */
  stage(max: number, fill: (into: Uint8Array) => number): Promise<void>;
}

/** The source side of one section (QEMU's SaveVMHandlers). */
export interface LiveSection {
  /** The section id on the wire: the destination dispatches by it. */
  readonly id: number;
  /** The section's name (QEMU's idstr), sent with the id on START and FULL records. */
  readonly name: string;
  /** The version of the section's own format, sent with the name. */
  readonly version: number;
  /** `live`: iterates before the switchover; `full`: sent once, whole, in the completion. */
  readonly kind: "live" | "full";
  /** save_setup: the section's start (its first state, e.g. RAM's bulk stage). */
  setup(): Promise<void>;
  /** state_pending_estimate: what is left, cheaply (no dirty-log sync). */
  pendingEstimate(): PendingBytes;
  /** state_pending_exact: what is left after bringing the section's own records up to date. */
  pendingExact(): PendingBytes;
  /**
   * save_live_iterate: sends some of what is left into the open section record, under the
   * rate limit; true when this pass has nothing more to send.
   */
  iterate(): Promise<boolean>;
  /**
   * save_live_complete_precopy, with the guest stopped: a live section sends all it has
   * left (into its open COMPLETE record); a full section writes its FULL record to `out`.
   */
  completePrecopy(out: FrameSink): Promise<void>;
  /**
   * The section's part of postcopy's start: a full section writes its FULL record into the
   * package (`out`); a live section has nothing to add (postcopy moves the rest of it).
   */
  completePostcopy(out: FrameSink): Promise<void>;
  /**
   * Not postcopyable (the disk): postcopy starts only once its pending estimate is within the
   * threshold, and its rest goes in a COMPLETE record with the guest stopped, before postcopy's
   * package (the seed's postcopy_start: qemu_savevm_state_complete_precopy, iterable only).
   */
  readonly finishesInPrecopy?: boolean;
  /** save_cleanup: releases what the section holds (called once, however the run ended). */
  cleanup(): void;
}

/** Sums what every section has left (estimate or exact). */
export function sumPending(parts: readonly PendingBytes[]): PendingBytes {
  const sum = { mustPrecopy: 0, postcopyable: 0, wire: 0 };
  for (const p of parts) {
    sum.mustPrecopy += p.mustPrecopy;
    sum.postcopyable += p.postcopyable;
    sum.wire += p.wire;
  }
  return sum;
}

/** What the sections have left, by their cheap estimate. */
export function pendingEstimate(sections: readonly LiveSection[]): PendingBytes {
  return sumPending(sections.map((s) => s.pendingEstimate()));
}

/** What the sections have left, exactly (each brings its records up to date first). */
export function pendingExact(sections: readonly LiveSection[]): PendingBytes {
  return sumPending(sections.map((s) => s.pendingExact()));
}

/**
 * The switchover may start: nothing is left, or sending what is left, summed over every
 * section, costs less than the switchover budget (bandwidth × downtime-limit less what else the
 * downtime pays: SourceCounters.switchoverBudget).
 */
export function canSwitchOver(pending: PendingBytes, budget: number): boolean {
  return pending.wire === 0 || pending.wire < budget;
}

/** The destination side of one section (QEMU's load_setup, load_state, load_cleanup). */
export interface SectionLoader {
  /** The section id this loader answers to. */
  readonly id: number;
  /** The section's name: a record naming another for this id is refused. */
  readonly name: string;
  /** The highest version of the section's format this agent loads. */
  readonly version: number;
  /** `live` sections take records that open and close; `full` ones one FULL record. */
  readonly kind: "live" | "full";
  /** load_setup: a START record of `version` opened the section. */
  loadSetup(version: number): void;
  /**
   * load_state: a frame inside the open section (type and payload length from its checked
   * header); the loader reads (or refuses) its payload from `reader`.
   */
  loadState(type: number, length: number, reader: FrameReader): Promise<void>;
  /** A FULL record's body (full sections). */
  loadFull(version: number, body: Uint8Array): void;
  /** A record boundary: everything the loader holds back must be in place now. */
  settle(): Promise<void>;
  /**
   * Before the destination reports `completed` (after EOF): what the loader wrote is on the device
   * (absent: nothing to flush).
   */
  flush?(): Promise<void>;
  /** load_cleanup: releases what the loader holds (once, however the run ended). */
  loadCleanup(): void;
}

/** The refusal of a frame type a live section's loader does not take. */
export function frameRefused(section: string, type: number): WireError {
  const code = type.toString(16).padStart(2, "0");
  return new WireError(`migration stream: section '${section}' does not take frame type 0x${code}`);
}

/** The refusal of a SECTION_FULL for a live section. */
export function notSentWhole(section: string): WireError {
  return new WireError(`migration stream: section '${section}' is not sent whole`);
}
