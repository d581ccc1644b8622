/**
 * When the destination activates its drives (the seed's process_incoming_migration_bh, the
 * `late-block-activate` capability): without it, as soon as the guest has arrived, whether it
 * runs or stays paused; with it, only if the guest runs now, else at its `cont` (QMP cont
 * activates every drive). Activation is the point from which this agent's guest owns the
 * image; in QEMU it takes the image's locks, which is why it may come late.
 *
 * @module
 */
import type { SharedGuest } from "../adapters/memory/guest_ram.ts";
import { setDrivesActive } from "../adapters/disk/drive.ts";

/** Whether the arriving guest's drives are activated now (see the module doc). */
export function activatesOnArrival(lateBlockActivate: boolean, runsNow: boolean): boolean {
  return !lateBlockActivate || runsNow;
}

/** The agent's `late-block-activate`, written by the main thread for the incoming Worker. */
export function setLateBlockActivate(guest: SharedGuest, on: boolean): void {
  guest.lateBlockActivate ??= new Int32Array(new SharedArrayBuffer(4));
  Atomics.store(guest.lateBlockActivate, 0, on ? 1 : 0);
}

/**
 * The destination's guest arrived and takes `runstate`: activates its drives if it is time;
 * returns `runstate`.
 */
export function activateOnArrival<T extends string>(guest: SharedGuest, runstate: T): T {
  const late = guest.lateBlockActivate ? Atomics.load(guest.lateBlockActivate, 0) === 1 : false;
  if (activatesOnArrival(late, runstate === "running")) setDrivesActive(guest.drives, true);
  return runstate;
}
