/**
 * Test helper for fault tests with real agent processes: a source whose guest is idle (so
 * "what its guest would have without the migration" is a fixed digest), a destination,
 * and the checks every fault case ends with — the source's guest running with its memory
 * intact, the destination's attempt failed with its guest not running, and a second
 * migration completing.
 *
 * @module
 */
import assert from "node:assert/strict";
import { backoff } from "../../harness/wait.ts";
import {
  type AgentProcess,
  type Json,
  startAgent,
  startAgents,
  type TestAgent,
  type Track,
} from "../../harness/agent_process.ts";
import { startLocalAgents } from "./local_agent.ts";

/** Guest size of the fault tests, in bytes. */
export const FAULT_RAM = 24 << 20;
/**
 * Bytes per second that make a 24 MiB precopy last about three seconds. `ram.transferred`
 * moves a run of pages (up to 7 MiB) at a time, the first after about 0.9 s: a fault injected
 * once it has moved still lands mid-flight.
 */
export const SLOW = 8 << 20;

/** Runs `fn`; every agent it tracks is stopped afterwards, whatever happens. */
export { withAgents } from "../../harness/agent_process.ts";

const ARGS = {
  /** A destination listening on a free loopback port. */
  destination: ["--ram", `${FAULT_RAM}`, "--incoming", "tcp:127.0.0.1:0"],
  /** A source with random RAM and an idle vCPU: its digest only changes if something broke. */
  source: ["--ram", `${FAULT_RAM}`, "--fill", "random", "--workload", "idle"],
};

/** A destination listening on a free loopback port. */
export function startDestination(): Promise<AgentProcess> {
  return startAgent(ARGS.destination);
}

/** A source with random RAM and an idle vCPU: its digest only changes if something broke. */
export function startSource(): Promise<AgentProcess> {
  return startAgent(ARGS.source);
}

/** Starts destinations and sources (in the order of `roles`) at once; see startAgents. */
export function startFaultAgents(
  track: Track,
  ...roles: (keyof typeof ARGS)[]
): Promise<AgentProcess[]> {
  return startAgents(track, ...roles.map((role) => ARGS[role]));
}

/** As {@link startFaultAgents}, in this process (local_agent.ts): for faults of the link. */
export function startLocalFaultAgents(
  track: Track,
  ...roles: (keyof typeof ARGS)[]
): Promise<TestAgent[]> {
  return startLocalAgents(track, ...roles.map((role) => ARGS[role]));
}

/** The guest's RAM digest now. */
export async function digest(a: TestAgent): Promise<Json> {
  return (await a.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
}

/** The port of a destination's incoming URI. */
export function incomingPort(a: TestAgent): number {
  return Number(a.incomingUri!.split(":").pop());
}

/** The id of the attempt a fresh destination is waiting with (status setup). */
export async function waitingAttempt(dst: TestAgent): Promise<string> {
  const c = await dst.waitStatus(/^setup$/, 15_000);
  return c["x-id"];
}

/**
 * Waits until the destination is idle again: still waiting (`setup`) or showing its failed
 * attempt (which stays visible until the next connection); returns that status.
 */
export async function destinationIdle(dst: TestAgent): Promise<string> {
  return (await dst.waitStatus(/^(setup|failed)$/, 30_000)).status;
}

/** Polls until the source has sent at least `bytes` (and is still active). */
export async function sentAtLeast(src: TestAgent, bytes: number): Promise<void> {
  const end = Date.now() + 30_000;
  const pause = backoff();
  for (;;) {
    const info = (await src.api<Json>("GET", "/migrations/current")).body;
    assert.match(info.status, /^(setup|active)$/, `source ended early: ${JSON.stringify(info)}`);
    if (info.status === "active" && info.ram?.transferred >= bytes) return;
    if (Date.now() > end) throw new Error(`source sent only ${info.ram?.transferred} bytes`);
    await new Promise((r) => setTimeout(r, pause()));
  }
}

/** The source failed (or was cancelled): its guest runs on with exactly the RAM it had. */
export async function expectSourceIntact(
  src: TestAgent,
  before: Json,
  status: "failed" | "cancelled",
): Promise<Json> {
  const info = await src.waitStatus(/^(failed|cancelled|completed)$/, 30_000);
  assert.equal(info.status, status, JSON.stringify(info));
  if (status === "failed") assert.ok(info["error-desc"], "a failed migration says why");
  assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "running");
  assert.deepEqual(await digest(src), before, "the source's memory is intact");
  return info;
}

/**
 * The destination's attempt `id` failed with a reason and its guest never ran; query-migrate
 * shows the failure (until the next attempt, which the second migration then proves welcome).
 */
export async function expectDestinationFailed(dst: TestAgent, id: string): Promise<Json> {
  const end = Date.now() + 30_000;
  const pause = backoff();
  let info: Json;
  for (;;) {
    info = (await dst.api<Json>("GET", `/migrations/${id}`)).body;
    if (/^(failed|completed|postcopy-paused)$/.test(info.status)) break;
    if (Date.now() > end) throw new Error(`destination attempt still ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, pause()));
  }
  assert.equal(info.status, "failed", JSON.stringify(info));
  assert.ok(info["error-desc"], "the destination says why");
  assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "inmigrate");
  const now = (await dst.api<Json>("GET", "/migrations/current")).body;
  assert.equal(now["x-id"], id, "the failed attempt is the one query-migrate shows");
  assert.equal(now.status, "failed");
  return info;
}

/** A migration from `src` to `uri` (default: the destination's own URI) completes. */
export async function expectMigrationCompletes(
  src: TestAgent,
  dst: TestAgent,
  uri = dst.incomingUri!,
): Promise<void> {
  await destinationIdle(dst);
  assert.equal((await src.api("PATCH", "/parameters", { "max-bandwidth": 0 })).status, 200);
  const r = await src.api<Json>("POST", "/migrations", { uri });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const info = await src.waitStatus(/^(completed|failed|cancelled)$/, 60_000);
  assert.equal(info.status, "completed", JSON.stringify(info));
  // The destination's attempt for this migration (a new one after a failure).
  const end = Date.now() + 30_000;
  const pause = backoff();
  let last: Json = null;
  while (Date.now() < end) {
    last = (await dst.api<Json>("GET", "/migrations")).body[0];
    if (last?.status === "completed") break;
    await new Promise((r) => setTimeout(r, pause()));
  }
  assert.equal(last?.status, "completed", JSON.stringify(last));
  assert.deepEqual(await digest(dst), await digest(src));
}
