/**
 * How the primary leaves COLO (the end of QEMU's colo_process_checkpoint, and its failover):
 * the secondary is told with COLO_EXIT where it can hear it; without proof it died (a silent
 * link, or an arbiter still to decide) this guest stops and waits for lost-heartbeat or the
 * arbiter's verdict; then it runs on alone, or stops where the secondary runs the guest (this
 * side fenced, or the arbiter's key lost). Input that waited is given, or dropped with a notice.
 *
 * @module
 */
import { ColoExitCode, ColoMessage, encodeColoFrame } from "../wire/colo.ts";
import type { ColoEnding } from "./colo_link.ts";
import type { InputQueue } from "./colo_input.ts";
import type { SourceSession } from "./source_session.ts";

/** Why input that waited is not given when this side leaves COLO and stops. */
const STOPPED = "this side stopped, the secondary runs the guest";

/** Leaves COLO as `ending` says (see colo_link.ts), and reports it. */
export async function leaveColo(
  s: SourceSession,
  input: InputQueue,
  ending: ColoEnding,
): Promise<void> {
  const { link, vcpu } = s;
  const arbitrated = s.ctx.coloArbiter === true;
  // An error: the secondary is told (it stops); with an arbiter this side runs on only if it
  // wins the key (the EXIT may not get through: the secondary would then claim it).
  if (ending.kind === "failed") await sendExit(s, ColoExitCode.ERROR);
  const failed = ending.kind === "failed";
  if (ending.kind === "silent" || (arbitrated && (ending.kind === "dead" || failed))) {
    // No proof the secondary died (with an arbiter, no decision yet either): this guest stops
    // and waits for lost-heartbeat or the arbiter's verdict (colo_arbiter.ts).
    vcpu.setRunstate("colo");
    link.post({ t: "colo", what: "hold" });
    while (!s.control.lostHeartbeat) await s.control.wake.wait(1000);
    const v = s.control.verdict;
    if (v === "lost" || (v === "won" && !failed)) ending = { kind: v };
  }
  if (ending.kind === "request" || ending.kind === "won") {
    // Won: a secondary that still hears this side stops (the key is this side's anyway).
    await sendExit(s, ColoExitCode.REQUEST);
  }
  s.shutdown(); // lost: no EXIT, the connection just ends (a live secondary then claims)
  const stops = ending.kind === "fenced" || ending.kind === "lost";
  s.control.onColoInput = null;
  const lost = input.leave(s.ctx.guest, !stops);
  if (lost > 0) {
    link.post({ t: "notice", message: `COLO: ${lost} bytes of input not given: ${STOPPED}` });
  }
  // The secondary runs the guest on alone (its state stays there), or the arbiter fenced
  // this side: it stops.
  if (stops) vcpu.setRunstate("postmigrate");
  else vcpu.setRunstate("running");
  const error = ending.kind === "dead" || ending.kind === "failed" || ending.kind === "won" ||
    ending.kind === "lost";
  link.post({ t: "colo", what: "exit", reason: error ? "error" : "request" });
  if (ending.kind === "failed") {
    link.post({ t: "error", message: `COLO: ${ending.message}` });
    await link.transition("colo", "failed");
  } else await link.transition("colo", "completed");
}

/** Tells the secondary this side leaves (it stops its guest); the link may be gone. */
async function sendExit(s: SourceSession, code: number): Promise<void> {
  if (s.writer.error) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    await Promise.race([
      (async () => {
        await s.sender.append(encodeColoFrame(ColoMessage.EXIT, code));
        await s.sender.flush();
      })(),
      new Promise<void>((r) => timer = setTimeout(r, 300)),
    ]);
  } catch {
    /* the link is gone: the secondary sees it end */
  } finally {
    clearTimeout(timer);
  }
}
