/**
 * Known-zero pages (SharedGuest.written): a zero-filled source sends never-written pages
 * without reading them, a destination skips checking pages no stream ever stored to. The
 * guest must still arrive whole: pages the vCPU wrote, and pages a cancelled stream left
 * in the destination's RAM.
 */
import assert from "node:assert/strict";
import {
  type Json,
  markAttempt,
  type TestAgent,
  waitNextEnd,
  withAgents,
} from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { waitFor } from "../harness/wait.ts";

async function migrate(src: TestAgent, dst: TestAgent): Promise<void> {
  await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
  const mark = await markAttempt(dst); // a failed attempt before shows until this one starts
  assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
  const info = await src.waitStatus(/completed|failed/);
  assert.equal(info.status, "completed", JSON.stringify(info));
  const arrived = await waitNextEnd(dst, mark);
  assert.equal(arrived.status, "completed", JSON.stringify(arrived));
}

async function digests(a: TestAgent): Promise<Json> {
  return (await a.api<Json>("GET", "/machine/digest")).body;
}

/** Waits until the guest of `a` has written more than `than` pages; returns its count. */
function writesBeyond(a: TestAgent, than: number): Promise<number> {
  return waitFor(`the vCPU of ${a.base} to write beyond page count ${than}`, async () => {
    const n = (await a.api<Json>("GET", "/machine")).body.workload["pages-written"];
    return n > than && n;
  });
}

/**
 * A zero-filled guest running `workload` migrates from `a` to `b`, whose guest writes pages of
 * its own, then from `b` to `c`: it arrives whole, twice.
 */
async function twice(a: TestAgent, b: TestAgent, c: TestAgent, workload: string) {
  assert.equal((await a.api("POST", "/machine/cont")).status, 202); // runs from here on
  await writesBeyond(a, 0); // some pages written, most still known zero
  await migrate(a, b);
  const arrived = (await a.api<Json>("GET", "/machine")).body.workload["pages-written"];
  await writesBeyond(b, arrived); // b's guest writes pages of its own before going on
  await migrate(b, c);
  await c.api("POST", "/machine/stop");
  const dc = await digests(c);
  assert.deepEqual((await digests(b)).blocks, dc.blocks);
  if (workload === "increment") assert.equal(dc["x-increment-check"].ok, true);
}

/** Arguments of a zero-filled source running `workload` (paused: -S) and two destinations. */
function chain(workload: string): string[][] {
  const incoming = ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0", "--workload", workload];
  return [["--ram", "16M", "--fill", "zero", "--workload", workload, "-S"], incoming, incoming];
}

// The zero-filled source of the first chain, still paused with every page known zero, is
// first the guest a destination takes after a cancelled stream of random pages.
Deno.test("known zero: a zero-filled guest running random,rate=20000 arrives whole, twice", async (t) => {
  const workload = "random,rate=20000";
  await withAgents(async (track) => {
    const [a, b, c, dst, r] = await startLocalAgents(
      track,
      ...chain(workload),
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", "--workload", "idle"],
    );
    await t.step("a destination zeroes what a cancelled stream stored", async () => {
      // 16 MiB at 4 MiB/s: cancelled after 2 MiB of random pages reached the destination.
      await r.api("PATCH", "/parameters", { "max-bandwidth": 4 << 20 });
      await r.api("POST", "/migrations", { uri: dst.incomingUri });
      await waitFor("2 MiB sent", async () => {
        const info = (await r.api<Json>("GET", "/migrations/current")).body;
        assert.match(info.status, /^(setup|active)$/, JSON.stringify(info));
        return info.ram?.transferred >= 2 << 20;
      });
      assert.equal((await r.api("POST", "/migrations/current/cancel")).status, 202);
      assert.equal((await r.waitStatus(/cancelled|failed|completed/)).status, "cancelled");
      await dst.waitStatus(/failed|setup/); // it re-arms when the next stream connects
      await migrate(a, dst); // a's guest has not run yet: all of its RAM is known zero
      await dst.api("POST", "/machine/stop");
      assert.deepEqual((await digests(dst)).blocks, (await digests(a)).blocks);
    });
    // a completed its migration: it runs again after `cont` (as QEMU's) and migrates on.
    await t.step("a zero-filled guest arrives whole, twice", () => twice(a, b, c, workload));
  });
});

Deno.test("known zero: a zero-filled guest running increment arrives whole, twice", async () => {
  await withAgents(async (track) => {
    const [a, b, c] = await startLocalAgents(track, ...chain("increment"));
    await twice(a, b, c, "increment");
  });
});
