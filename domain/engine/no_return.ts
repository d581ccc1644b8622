/**
 * One migration's point of no return, shared by the main thread and the source Worker in a
 * SharedArrayBuffer cell. Before it the guest belongs to the source: a cancel, a failure or a
 * crashed data path lets it run on. The source crosses it just before the last bytes that can
 * let the destination run the guest leave (precopy: the EOF frame; postcopy: the package with
 * POSTCOPY_RUN): from then on the destination may run it, so a cancel is refused and nothing
 * restarts the source's guest — unless those bytes provably never left (their write failed,
 * or the destination reported that it failed to load: SHUT with an error), which gives the
 * guest back to the source.
 *
 * Crossing and cancelling are one compare-and-set on the same cell, so exactly one wins: a
 * cancel that got there first makes the crossing fail (the run unwinds as cancelled, the
 * guest runs on), and a crossing that got there first makes the cancel fail (refused).
 *
 * @module
 */

/** What a failure past the point of no return means for the source's guest (error text). */
export const PAST_THE_POINT =
  "past the point of no return the destination may be running the guest, so it stays " +
  "stopped here (cont it only if the destination does not run it)";

/** The cell's values. */
const OPEN = 0;
const CROSSED = 1;
const CANCELLED = 2;
const GIVEN_BACK = 3;

/** Where a migration stands with respect to its point of no return. */
export type NoReturnState = "open" | "crossed" | "cancelled" | "given-back";

const NAMES: readonly NoReturnState[] = ["open", "crossed", "cancelled", "given-back"];

/** A migration's point of no return (see the module doc). */
export class PointOfNoReturn {
  /** The shared cell (post it to the source Worker). */
  readonly cell: Int32Array;

  /** Wraps `cell` (one Int32 on a SharedArrayBuffer), or a new open one. */
  constructor(cell: Int32Array = new Int32Array(new SharedArrayBuffer(4))) {
    this.cell = cell;
  }

  /** The current state. */
  get state(): NoReturnState {
    return NAMES[Atomics.load(this.cell, 0)];
  }

  /** True while the destination may run the guest (crossed, not given back). */
  get crossed(): boolean {
    return Atomics.load(this.cell, 0) === CROSSED;
  }

  /**
   * Source Worker, just before the last bytes leave: true when the point is crossed now (or
   * already was), false when a cancel got there first.
   */
  cross(): boolean {
    const old = Atomics.compareExchange(this.cell, 0, OPEN, CROSSED);
    return old === OPEN || old === CROSSED;
  }

  /**
   * Source Worker: the last bytes never reached the destination (their write failed) or the
   * destination failed to load: it cannot run the guest, which is the source's again.
   */
  giveBack(): void {
    Atomics.compareExchange(this.cell, 0, CROSSED, GIVEN_BACK);
  }

  /** Main thread, for a cancel: true when the cancel may go ahead, false once past the point. */
  claimForCancel(): boolean {
    const old = Atomics.compareExchange(this.cell, 0, OPEN, CANCELLED);
    return old !== CROSSED;
  }
}
