/**
 * The outgoing migration, as the seed's migration_thread: a {@link SourceSession} and the
 * phases that drive it — precopy (precopy_phase.ts: set-up, dirty passes, completion with
 * the vCPU stopped) and, when migrate-start-postcopy takes effect, postcopy
 * (postcopy_phase.ts: the device state as one package, page requests ahead of background
 * pages, pause and recovery). A data path that takes over a paused postcopy goes straight to
 * the postcopy phase. On failure or cancel before the point of no return the guest runs on.
 * Status changes are asked of the main thread; this code runs inside the source Worker.
 *
 * @module
 */
import { Cancelled } from "./cancelled.ts";
import { ColoPhase } from "./colo_phase.ts";
import { failureKind } from "./failure.ts";
import { PAST_THE_POINT } from "./no_return.ts";
import { isTwoWayUri } from "./peer_reason.ts";
import { PostcopyPhase } from "./postcopy_phase.ts";
import { PrecopyPhase } from "./precopy_phase.ts";
import type { SourceContext } from "./source_context.ts";
import { SourceSession } from "./source_session.ts";
import type { MigrationStatus } from "../state_machine.ts";
import { STAT } from "./stats.ts";

export type { SourceContext };

/** Runs one outgoing migration to its end; never throws. */
export async function runSource(ctx: SourceContext): Promise<void> {
  const s = new SourceSession(ctx);
  // total-time counts from the migrate command (QEMU's start_time, set with status setup
  // before the thread exists): the main thread stamps it; a context without one starts now.
  ctx.stats[STAT.startTime] ||= s.started;
  ctx.stats[STAT.expectedDowntime] = ctx.params["downtime-limit"];
  try {
    await ctx.warmedUp;
    // Every way to its end sets the guest's runstate before the status says so: finish()
    // (postmigrate), COLO's leave (running on, or postmigrate).
    await drive(s);
  } catch (caught) {
    await fail(s, caught);
  } finally {
    s.close();
  }
}

/** Picks the phases: precopy, then its completion or postcopy; a take-over recovers. */
async function drive(s: SourceSession): Promise<void> {
  if (s.ctx.recovering) {
    await takeOver(s);
    return;
  }
  await s.open();
  const precopy = new PrecopyPhase(s);
  await precopy.setup();
  if (await precopy.iterate() === "postcopy") {
    const postcopy = new PostcopyPhase(s);
    await postcopy.start();
    await postcopy.loop();
    await finish(s, "postcopy-active");
  } else if (s.caps["x-colo"]) {
    await new ColoPhase(s).run(await precopy.complete(true));
  } else {
    await finish(s, await precopy.complete());
  }
}

/**
 * A postcopy whose data path died past the point of no return: the main thread paused it;
 * recover on the resume URI (received bitmaps), then serve what the destination lacks.
 */
async function takeOver(s: SourceSession): Promise<void> {
  const { stats } = s.ctx;
  s.counters.pass = stats[STAT.dirtySyncCount];
  s.carryBytes(stats[STAT.transferred]);
  s.counters.begin(Date.now());
  const postcopy = new PostcopyPhase(s);
  await postcopy.takeOver();
  await postcopy.loop();
  await finish(s, "postcopy-active");
}

/**
 * The run failed (or was cancelled): the guest goes back to the source unless it is past the
 * point of no return, and the status says failed (a cancel ends as the main thread says).
 */
async function fail(s: SourceSession, caught: unknown): Promise<void> {
  const { link, point } = s;
  // Its status is read below: setup → active, if asked, is answered first (precopy_phase.ts).
  await s.activation;
  s.liftThrottle(); // before any final status is read
  if (caught instanceof Cancelled) await s.endCancelled();
  s.shutdown();
  // Beyond QEMU: a destination that refused or failed the stream says why (a peer error).
  // A connection never made has no destination to wait for.
  const explained = failureKind(caught) !== "cancel" && s.status !== "cancelling" &&
    s.connected && isTwoWayUri(s.ctx.uri);
  const e = explained ? await s.reason.explain(caught) : caught;
  const kind = failureKind(e);
  // The destination said it failed to load: it does not run the guest.
  if (kind === "peer") point.giveBack();
  const theirs = point.crossed;
  // migration_iteration_finish: the guest goes on where it was, unless the destination
  // may run it (past the point of no return). Before the status says failed, so that a
  // client who sees `failed` finds the guest running.
  if (!theirs) s.switchover.reactivateDrives();
  if (s.switchover.vmWasRunning && !theirs) s.vcpu.setRunstate("running");
  else if (s.vcpu.runstate === "finish-migrate") s.vcpu.setRunstate("postmigrate");
  const status = s.status;
  if (kind !== "cancel" && status !== "cancelling") {
    const message = e instanceof Error ? e.message : String(e);
    link.post({ t: "error", message: theirs ? `${message}; ${PAST_THE_POINT}` : message });
    if (status !== "failed" && status !== "completed" && status !== "cancelled") {
      await link.transition(status, "failed");
    }
  }
}

/**
 * migration_calculate_complete, then `completed`: the final counters are in place before
 * anyone can read it.
 */
async function finish(s: SourceSession, state: MigrationStatus): Promise<void> {
  const { stats, link } = s.ctx;
  s.counters.update(Date.now());
  const end = Date.now();
  stats[STAT.totalTime] = end - stats[STAT.startTime];
  stats[STAT.remaining] = 0;
  stats[STAT.transferred] = s.transferred();
  const transferTime = stats[STAT.totalTime] - stats[STAT.setupTime];
  if (transferTime > 0) stats[STAT.mbps] = s.transferred() * 8 / transferTime / 1000;
  // The throttle ends with the migration: lifted before anyone can read `completed`.
  s.liftThrottle();
  // postmigrate (migration_iteration_finish) before anyone can read `completed`.
  if (s.vcpu.runstate === "finish-migrate") s.vcpu.setRunstate("postmigrate");
  if (!await link.transition(state, "completed")) throw new Cancelled();
}
