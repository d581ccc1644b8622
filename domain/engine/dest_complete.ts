/**
 * The end of an incoming stream, as the seed's process_incoming_migration_bh: after EOF every
 * section and page must be here (in postcopy the fault loop is stopped and the blocktime
 * recorded); then the guest takes its runstate (running under COLO) and the migration is
 * reported completed (or colo).
 *
 * @module
 */
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { WireError } from "../wire/wire_error.ts";
import { STAT } from "./stats.ts";
import type { MultifdReceiver } from "./multifd_receiver.ts";
import { activateOnArrival } from "../block_activation.ts";
import { runstateAfter } from "./dest_support.ts";
import type { DestinationContext } from "./dest_context.ts";
import type { RamLoader } from "./ram_loader.ts";
import type { StreamStates } from "./dest_stream_state.ts";
import type { SectionTable } from "./section_table.ts";
import type { DestColo } from "./dest_colo.ts";

/** What the end of a load reads of its run. */
export interface CompletionParts {
  ctx: DestinationContext;
  /** Where the loader stands in the stream. */
  stream: StreamStates;
  /** The sections loaded, by id. */
  sections: SectionTable;
  /** Where pages landed. */
  ram: RamLoader;
  vcpu: VcpuControl;
  /** The multifd page channels, if MULTIFD_SETUP claimed them. */
  mfd: MultifdReceiver | null;
  /** The secondary's side, if COLO_ENABLE came. */
  colo: DestColo | null;
  /** The postcopy fault loop, if POSTCOPY_LISTEN started it. */
  faults: Promise<void> | null;
  /** The source's runstate (GLOBAL_STATE), if it came. */
  globalState: string | null;
  /** When the run started (ms since the epoch). */
  start: number;
  /** Marks the run done and wakes the fault loop. */
  end(): void;
  /** Marks that the guest runs here from now (a later failure pauses it). */
  ran(): void;
}

/** After EOF: checks that everything is here, then runs (or pauses) the guest and reports completed. */
export async function completeLoad(p: CompletionParts): Promise<void> {
  const { ctx, stream, sections, ram, vcpu, colo } = p;
  const { link, stats } = ctx;
  stream.requireNoSection("the end of the stream");
  const missing = sections.missingFull();
  if (missing.length > 0) {
    throw new WireError(
      `migration stream: no device state received (section ${
        missing.map((n) => `'${n}'`).join(", ")
      } never came)`,
    );
  }
  if (ram.postcopy) {
    // Page channels carried precopy only; they ended (EOF) before postcopy began.
    await p.mfd?.finish();
    const missing = ram.missing();
    if (missing > 0) throw new WireError(`migration stream: ${missing} pages never arrived`);
    p.end();
    await p.faults;
    vcpu.setPostcopy(false);
    const bt = vcpu.blocktime();
    stats[STAT.blocktime] = bt.totalMs;
    // What the sections wrote (the disk's images) is on the device before `completed`.
    await sections.flush();
    stats[STAT.totalTime] = Date.now() - p.start;
    if (ctx.arrivalDigest) link.post({ t: "arrived" });
    if (!await link.transition("postcopy-active", "completed")) {
      throw new WireError("incoming migration was stopped");
    }
    return;
  }
  await p.mfd?.finish();
  const unseen = ram.unseen();
  if (unseen !== 0) throw new WireError(`migration stream: ${unseen} pages were never received`);
  // With the arrival digest, the guest as it arrived is measured by a copy-on-first-write
  // snapshot, so the test aid can compare it with the source's without delaying the guest.
  if (ctx.arrivalDigest) {
    vcpu.beginSnapshot();
    link.post({ t: "arrived" });
  }
  // process_incoming_migration_bh: runstate first, then completed (or colo: the guest runs).
  colo?.prepare();
  p.ran();
  const runstate = colo ? "running" : runstateAfter(p.globalState, ctx.autostart);
  vcpu.setRunstate(activateOnArrival(ctx.guest, runstate));
  // The guest runs on what the sections wrote (the disk's images, in the page cache); it is on
  // the device before `completed`.
  await sections.flush();
  stats[STAT.totalTime] = Date.now() - p.start;
  if (!await link.transition("active", colo ? "colo" : "completed")) {
    throw new WireError("incoming migration was stopped");
  }
}
