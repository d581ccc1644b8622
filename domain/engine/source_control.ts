/**
 * Commands the main thread sends to a running outgoing migration, as flags the source's
 * loop reads, plus one wake-up signal so a waiting loop reacts at once.
 *
 * @module
 */
import type { ForwardedRecord } from "./colo_records.ts";
import { Signal } from "./signal.ts";

/** The source's mailbox. */
export class SourceControl {
  /** migrate-start-postcopy was asked. */
  startPostcopy = false;
  /** migrate-continue released pre-switchover. */
  continued = false;
  /** migrate-pause was asked (postcopy-active only). */
  pauseRequested = false;
  /** migrate with resume=true: the new URI. */
  resumeUri: string | null = null;
  /** Live parameters changed (max-bandwidth applies at once in precopy). */
  paramsChanged = false;
  /** A policy turned auto-converge on for this migration. */
  forceAutoConverge = false;
  /** x-colo-lost-heartbeat (COLO: leave and run on alone). */
  lostHeartbeat = false;
  /** COLO: the arbiter's verdict that came with lostHeartbeat (null: the operator's request). */
  verdict: "won" | "lost" | null = null;
  /** COLO: the output compare wants a checkpoint now. */
  checkpointNow = false;
  /** COLO: where the main thread's forwarded output records go (set while COLO runs). */
  onColoRecords: ((records: ForwardedRecord[]) => void) | null = null;
  /** COLO: input for the guest, mirrored to the secondary (colo_input.ts; set while COLO runs). */
  onColoInput: ((bytes: Uint8Array) => void) | null = null;
  /** migrate_cancel. */
  cancelled = false;
  /** Wakes the loop after any change. */
  readonly wake = new Signal();
}
