/**
 * Issue 18, one point of no return, with real agents: a cancel once the destination may run
 * the guest is refused (409, saying why) and the migration finishes on its own with exactly
 * one guest running — in precopy while the destination's SHUT is held back (the destination
 * already runs the guest), and in postcopy-active (the answer names the pause instead).
 */
import assert from "node:assert/strict";
import { type Json } from "../harness/agent_process.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import {
  incomingPort,
  startLocalFaultAgents,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

// One source for both cases, each to a destination of its own: the source that completed the
// first migration runs again after `cont` (as QEMU's) and migrates on.
Deno.test("no return: a cancel past the point of no return is refused; the migration completes", async (t) => {
  await withAgents(async (track) => {
    const [dst, dst2, src] = await startLocalFaultAgents(
      track,
      "destination",
      "destination",
      "source",
    );
    await t.step("in precopy, after the destination runs the guest", async () => {
      const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port: incomingPort(dst) });
      try {
        await waitingAttempt(dst);
        await src.api("PATCH", "/capabilities", { "return-path": true });
        proxy.pause("down"); // the destination's SHUT is held back
        assert.equal((await src.api("POST", "/migrations", { uri: proxy.uri })).status, 202);
        await dst.waitStatus(/^completed$/, 30_000);
        assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
        // The window: the destination runs the guest, the source has not heard so yet.
        assert.equal((await src.api<Json>("GET", "/migrations/current")).body.status, "active");
        const r = await src.api<Json>("POST", "/migrations/current/cancel");
        assert.equal(r.status, 409, JSON.stringify(r.body));
        assert.match(r.body.detail, /point of no return/);
        assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "finish-migrate");
        proxy.resume("down");
        assert.equal((await src.waitStatus(/^(completed|failed|cancelled)$/)).status, "completed");
        assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
        assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
      } finally {
        await proxy.close();
      }
    });

    await t.step("in postcopy-active, refused with the pause named", async () => {
      assert.equal((await src.api("POST", "/machine/cont")).status, 202);
      await waitingAttempt(dst2);
      for (const a of [src, dst2]) await a.api("PATCH", "/capabilities", { "postcopy-ram": true });
      // 24 MiB at 8 MiB/s: postcopy lasts a few seconds.
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 8 << 20,
        "max-postcopy-bandwidth": 8 << 20,
      });
      assert.equal((await src.api("POST", "/migrations", { uri: dst2.incomingUri })).status, 202);
      await src.waitStatus(/^active$/, 30_000);
      assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
      await src.waitStatus(/^postcopy-active$/, 30_000);
      await dst2.waitStatus(/^postcopy-active$/, 30_000);
      const r = await src.api<Json>("POST", "/migrations/current/cancel");
      assert.equal(r.status, 409, JSON.stringify(r.body));
      assert.match(r.body.detail, /POST \/migrations\/current\/pause/);
      assert.equal((await src.waitStatus(/^(completed|failed|cancelled)$/)).status, "completed");
      assert.equal((await dst2.waitStatus(/^(completed|failed)$/)).status, "completed");
      assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
      assert.equal((await dst2.api<Json>("GET", "/machine")).body.runstate, "running");
    });
  });
});
