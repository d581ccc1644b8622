/**
 * Issue 18, one point of no return, with real agents: a cancel once the destination may run
 * the guest is refused (409, saying why) and the migration finishes on its own with exactly
 * one guest running — in precopy while the destination's SHUT is held back (the destination
 * already runs the guest), and in postcopy-active (the answer names the pause instead).
 */
import assert from "node:assert/strict";
import type { Json } from "./helpers/agent_process.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import {
  incomingPort,
  startDestination,
  startSource,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

Deno.test("no return: a cancel after the destination runs the guest is refused; the migration completes", async () => {
  await withAgents(async (track) => {
    const dst = track(await startDestination());
    const src = track(await startSource());
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
});

Deno.test("no return: a cancel in postcopy-active is refused and names the pause; the migration completes", async () => {
  await withAgents(async (track) => {
    const dst = track(await startDestination());
    const src = track(await startSource());
    await waitingAttempt(dst);
    for (const a of [src, dst]) await a.api("PATCH", "/capabilities", { "postcopy-ram": true });
    // 32 MiB at 8 MiB/s: postcopy lasts a few seconds.
    await src.api("PATCH", "/parameters", {
      "max-bandwidth": 8 << 20,
      "max-postcopy-bandwidth": 8 << 20,
    });
    assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
    await src.waitStatus(/^active$/, 30_000);
    assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
    await src.waitStatus(/^postcopy-active$/, 30_000);
    await dst.waitStatus(/^postcopy-active$/, 30_000);
    const r = await src.api<Json>("POST", "/migrations/current/cancel");
    assert.equal(r.status, 409, JSON.stringify(r.body));
    assert.match(r.body.detail, /POST \/migrations\/current\/pause/);
    assert.equal((await src.waitStatus(/^(completed|failed|cancelled)$/)).status, "completed");
    assert.equal((await dst.waitStatus(/^(completed|failed)$/)).status, "completed");
    assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
    assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
  });
});
