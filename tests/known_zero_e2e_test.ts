/**
 * Known-zero pages (SharedGuest.written): a zero-filled source sends never-written pages
 * without reading them, a destination skips checking pages no stream ever stored to. The
 * guest must still arrive whole: pages the vCPU wrote, and pages a cancelled stream left
 * in the destination's RAM.
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json, startAgent, withAgents } from "./helpers/agent_process.ts";

async function migrate(src: AgentProcess, dst: AgentProcess): Promise<void> {
  await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
  assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
  const info = await src.waitStatus(/completed|failed/);
  assert.equal(info.status, "completed", JSON.stringify(info));
  assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
}

async function digests(a: AgentProcess): Promise<Json> {
  return (await a.api<Json>("GET", "/machine/digest")).body;
}

for (const workload of ["random,rate=20000", "increment"]) {
  Deno.test(`known zero: a zero-filled guest running ${workload} arrives whole, twice`, async () => {
    await withAgents(async (track) => {
      const a = track(await startAgent(["--ram", "64M", "--fill", "zero", "--workload", workload]));
      const incoming = ["--ram", "64M", "--incoming", "tcp:127.0.0.1:0", "--workload", workload];
      const b = track(await startAgent(incoming));
      await new Promise((r) => setTimeout(r, 300)); // let the vCPU write some pages
      await migrate(a, b);
      const c = track(await startAgent(incoming));
      await new Promise((r) => setTimeout(r, 300));
      await migrate(b, c);
      await c.api("POST", "/machine/stop");
      const dc = await digests(c);
      assert.deepEqual((await digests(b)).blocks, dc.blocks);
      if (workload === "increment") assert.equal(dc["x-increment-check"].ok, true);
    });
  });
}

Deno.test("known zero: a destination zeroes what a cancelled stream stored", async () => {
  await withAgents(async (track) => {
    const dst = track(await startAgent(["--ram", "64M", "--incoming", "tcp:127.0.0.1:0"]));
    const a = track(await startAgent(["--ram", "64M", "--fill", "random", "--workload", "idle"]));
    await a.api("PATCH", "/parameters", { "max-bandwidth": 16 * 2 ** 20 });
    await a.api("POST", "/migrations", { uri: dst.incomingUri });
    await a.waitStatus(/active/);
    await new Promise((r) => setTimeout(r, 700));
    assert.equal((await a.api("POST", "/migrations/current/cancel")).status, 202);
    assert.equal((await a.waitStatus(/cancelled|failed|completed/)).status, "cancelled");
    await dst.waitStatus(/failed|setup/); // it re-arms when the next stream connects
    const z = track(await startAgent(["--ram", "64M", "--fill", "zero", "--workload", "idle"]));
    await migrate(z, dst);
    await dst.api("POST", "/machine/stop");
    assert.deepEqual((await digests(dst)).blocks, (await digests(z)).blocks);
  });
});
