/**
 * The destination's return path (its serialised writer), and the runstate the guest takes
 * here from the source's GLOBAL_STATE.
 *
 * @module
 */
import { writeAll } from "./channel_io.ts";
import type { RunState } from "../../adapters/memory/vcpu_control.ts";
import type { Channel } from "../ports.ts";
import { WireError } from "../wire/wire_error.ts";

const RUNSTATES: readonly string[] = ["running", "paused", "postmigrate", "finish-migrate"];

/** A GLOBAL_STATE's runstate, refused unless it is one a source sends. */
export function checkedRunstate(rs: string): string {
  if (!RUNSTATES.includes(rs)) throw new WireError(`migration stream: unknown runstate '${rs}'`);
  return rs;
}

/**
 * The runstate the guest takes here once it may run: as on the source (`finish-migrate` as
 * `paused`), or — without a GLOBAL_STATE, or when it ran there — by autostart.
 */
export function runstateAfter(globalState: string | null, autostart: boolean): RunState {
  if (globalState === null || globalState === "running") return autostart ? "running" : "paused";
  return (globalState === "finish-migrate" ? "paused" : globalState) as RunState;
}

/** Serialises return-path messages from the loader and the fault loop. */
export class ReturnPath {
  #tail: Promise<void> = Promise.resolve();
  /** A write failed: later messages are dropped (the link is being replaced). */
  broken = false;

  /** Writes to the incoming channel's other direction. */
  constructor(readonly channel: Channel) {}

  /** Queues one encoded message; resolves once written (or dropped). */
  send(bytes: Uint8Array): Promise<void> {
    this.#tail = this.#tail.then(async () => {
      if (this.broken) return;
      try {
        await writeAll(this.channel, bytes);
      } catch {
        this.broken = true;
      }
    });
    return this.#tail;
  }
}
