/**
 * Auto-converge between two real agents: a guest dirtying faster than the bandwidth cap
 * does not converge without it, converges with it, and its throttle returns to 0.
 */
import assert from "node:assert/strict";
import { type AgentProcess, startAgent } from "./helpers/agent_process.ts";

async function run(
  autoConverge: boolean,
  seconds: number,
): Promise<{ converged: boolean; maxThrottle: number; after: number; sawPct: boolean }> {
  const agents: AgentProcess[] = [];
  try {
    const dst = await startAgent(["--ram", "64M", "--incoming", "tcp:127.0.0.1:0"]);
    agents.push(dst);
    // 20000 pages/s (~80 MiB/s) into a 32 MiB hot set, against a 24 MiB/s link.
    const src = await startAgent([
      "--ram",
      "64M",
      "--fill",
      "random",
      "--workload",
      "random,rate=20000,hot=0.5",
    ]);
    agents.push(src);
    await src.api("PATCH", "/parameters", {
      "max-bandwidth": 24 << 20,
      "downtime-limit": 300,
      "cpu-throttle-initial": 30,
      "cpu-throttle-increment": 20,
      "max-cpu-throttle": 99,
    });
    assert.equal(
      (await src.api("PATCH", "/capabilities", { "auto-converge": autoConverge })).status,
      200,
    );
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    let maxThrottle = 0;
    let sawPct = false;
    const end = Date.now() + seconds * 1000;
    let status = "";
    while (Date.now() < end) {
      const info = (await src.api("GET", "/migrations/current")).body;
      status = info.status;
      if (info["cpu-throttle-percentage"] !== undefined) {
        sawPct = true;
        maxThrottle = Math.max(maxThrottle, info["cpu-throttle-percentage"]);
      }
      if (/completed|failed/.test(status)) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    if (status !== "completed") await src.api("POST", "/migrations/current/cancel");
    await src.waitStatus(/completed|cancelled|failed/);
    const after = (await src.api("GET", "/machine")).body["cpu-throttle-percentage"];
    return { converged: status === "completed", maxThrottle, after, sawPct };
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

Deno.test("auto-converge: a guest that does not converge without it converges with it", async () => {
  const without = await run(false, 10);
  assert.equal(
    without.converged,
    false,
    "without auto-converge the guest must not converge in 10 s",
  );
  assert.equal(without.sawPct, false);
  const withIt = await run(true, 25);
  assert.equal(withIt.converged, true, "auto-converge makes it converge");
  assert.ok(withIt.sawPct && withIt.maxThrottle >= 30, `throttle reached ${withIt.maxThrottle}`);
  assert.equal(withIt.after, 0, "the throttle is lifted when the migration ends");
});
