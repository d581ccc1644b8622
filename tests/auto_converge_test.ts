/**
 * Auto-converge between two real agents: a guest dirtying faster than the bandwidth cap
 * does not converge without it, converges with it, and its throttle returns to 0.
 *
 * The guest: 16 MiB, its vCPU writing 20000 pages/s (~80 MiB/s) into the first 8 MiB, against
 * a 32 MiB/s link and a 20 ms downtime limit (0.64 MiB may be left for the last pass). A pass
 * over the hot 8 MiB takes a quarter second, in which the vCPU dirties 7 MiB of it again
 * (still 0.9 MiB were it starved to 1000 pages/s): precopy alone never converges (eight
 * passes are watched). Auto-converge throttles the vCPU to 50% once two periods of a second
 * dirtied more than half of what was sent (here that is enough), and by 49 more after two more
 * such periods; then it converges. Both migrations use one pair, one after the other.
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { waitFor } from "../harness/wait.ts";

/** Dirty passes the guest goes through without converging, to count as "does not converge". */
const PASSES_WITHOUT = 8;

interface Outcome {
  converged: boolean;
  passes: number;
  throttles: number[];
  after: number;
}

/** Migrates the hot guest of `src` to `dst`, with or without auto-converge (see the module doc). */
async function run(src: TestAgent, dst: TestAgent, autoConverge: boolean): Promise<Outcome> {
  await src.api("PATCH", "/parameters", {
    "max-bandwidth": 32 << 20,
    "downtime-limit": 20,
    "cpu-throttle-initial": 50,
    "cpu-throttle-increment": 49,
    "max-cpu-throttle": 99,
  });
  assert.equal(
    (await src.api("PATCH", "/capabilities", { "auto-converge": autoConverge })).status,
    200,
  );
  assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
  const throttles: number[] = [];
  // With auto-converge: until it completes. Without: until PASSES_WITHOUT passes went by.
  const last = await waitFor(
    autoConverge ? "the migration to converge" : `${PASSES_WITHOUT} dirty passes`,
    async () => {
      const info = (await src.api<Json>("GET", "/migrations/current")).body;
      const pct = info["cpu-throttle-percentage"];
      if (pct !== undefined && pct !== throttles.at(-1)) throttles.push(pct);
      if (/^(completed|failed|cancelled)$/.test(info.status)) return info;
      return !autoConverge && info.ram?.["dirty-sync-count"] >= PASSES_WITHOUT && info;
    },
    { timeoutMs: 60_000, intervalMs: 50 },
  );
  if (last.status === "active") await src.api("POST", "/migrations/current/cancel");
  const end = await src.waitStatus(/completed|cancelled|failed/);
  const after = (await src.api<Json>("GET", "/machine")).body["cpu-throttle-percentage"];
  return {
    converged: end.status === "completed",
    passes: end.ram?.["dirty-sync-count"] ?? last.ram["dirty-sync-count"],
    throttles,
    after,
  };
}

Deno.test("auto-converge: a guest that does not converge without it converges with it", async () => {
  await withAgents(async (track) => {
    const hot = ["--ram", "16M", "--fill", "random", "--workload", "random,rate=20000,hot=0.5"];
    const incoming = ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"];
    const [dst, src] = await startLocalAgents(track, incoming, hot);
    // One pair, one migration after the other: the one without auto-converge is cancelled
    // after its passes (the source runs on, the destination waits for the next stream).
    const without = await run(src, dst, false);
    await dst.waitStatus(/^(setup|failed)$/, 30_000);
    const withIt = await run(src, dst, true);
    assert.equal(
      without.converged,
      false,
      `without auto-converge the guest must not converge (${without.passes} passes)`,
    );
    assert.deepEqual(without.throttles, [], "no throttle without auto-converge");
    assert.equal(withIt.converged, true, "auto-converge makes it converge");
    // Polls may miss a step on a busy host, never invent one: what was seen is 50
    // (cpu-throttle-initial), then 99 (+49, up to max-cpu-throttle), or part of that, in order.
    assert.ok(
      ["50", "50,99", "99"].includes(withIt.throttles.join()),
      `the throttle goes 50, then 99: ${withIt.throttles}`,
    );
    assert.equal(withIt.after, 0, "the throttle is lifted when the migration ends");
  });
});
