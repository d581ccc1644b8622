/**
 * Issue 4 end to end: postcopy, the return path, migrate-pause and recovery between two real
 * agents over real sockets (and a cutting proxy). pause-before-switchover is in
 * switchover_e2e_test.ts.
 */
import { hugePagesUnavailable } from "../adapters/memory/huge_pages.ts";
import assert from "node:assert/strict";
import { type Json, type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { freePort, listening } from "./helpers/ports.ts";
import { hardPair, statuses, untilStatus as until } from "./helpers/postcopy_pair.ts";
import { recordEvents } from "./helpers/sse.ts";
import { waitFor } from "../harness/wait.ts";
import { completesWhole } from "./helpers/same_ram.ts";

/** Waits until both sides are in postcopy: the guest runs on the destination, pages flow. */
async function inPostcopy(src: TestAgent, dst: TestAgent): Promise<void> {
  await src.waitStatus(/^postcopy-active$/);
  assert.equal((await dst.waitStatus(/^(postcopy-active|completed)$/)).status, "postcopy-active");
}

/** Asks the destination to listen on a new port for the recovery and waits until it does. */
async function recoverOn(dst: TestAgent): Promise<string> {
  const p = freePort();
  const uri = `tcp:127.0.0.1:${p}`;
  assert.equal((await dst.api("POST", "/migrations/incoming/recover", { uri })).status, 202);
  await waitFor(`the destination listening on ${uri} to recover`, () => listening(p));
  return uri;
}

for (const hp of ["on", "off"]) {
  Deno.test(`postcopy, huge pages ${hp}: a guest that does not converge in precopy completes in postcopy`, async () => {
    await withAgents(async (track) => {
      const { src, dst } = await hardPair(track, false, hp);
      // The background push slow enough (16 MiB in 2 s) that the destination's guest asks for
      // pages even on a busy host: at 32 MiB/s, 8 huge pages could all arrive before it ran.
      await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 8 << 20 });
      const pageSize = hp === "on" && hugePagesUnavailable() === null ? 2 ** 21 : 4096;
      for (const a of [src, dst]) {
        const b = (await a.api("GET", "/machine")).body["x-ram-backing"];
        assert.equal(b["page-size"], pageSize, JSON.stringify(b));
      }
      const se = await recordEvents(src.base);
      const de = await recordEvents(dst.base, "0");
      try {
        // Before the migration starts, postcopy is refused with the seed's text.
        const early = await src.api("POST", "/migrations/current/postcopy");
        assert.equal(early.status, 409);
        assert.equal(
          early.body.detail,
          "Postcopy must be started after migration has been started",
        );
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        // Two whole passes after the first, and still active with RAM left to send.
        await waitFor("three dirty passes with RAM left", async () => {
          const info = (await src.api<Json>("GET", "/migrations/current")).body;
          assert.match(info.status, /^(setup|active)$/, "precopy alone has not converged");
          return info.ram?.["dirty-sync-count"] >= 3 && info.ram.remaining > 0;
        });
        assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
        const info = await src.waitStatus(/completed|failed/);
        assert.equal(info.status, "completed", JSON.stringify(info));
        assert.ok(info.ram["postcopy-requests"] > 0, "the destination asked for pages");
        const d = await dst.waitStatus(/completed|failed/);
        assert.equal(d.status, "completed");
        assert.ok(d["postcopy-blocktime"] >= 0 && Array.isArray(d["postcopy-vcpu-blocktime"]));
        assert.equal((await dst.api("GET", "/machine")).body.runstate, "running");
        await dst.api("POST", "/machine/stop");
        const a = (await src.api("GET", "/machine/digest")).body;
        const b = (await dst.api("GET", "/machine/digest")).body;
        assert.equal(b["x-taken"], "arrival");
        assert.deepEqual(a.blocks, b.blocks);
        assert.equal((await dst.api("GET", "/machine/digest")).body["x-increment-check"].ok, true);
        await until(se, "source", "completed");
        await until(de, "destination", "completed");
        assert.deepEqual(statuses(se, "source"), [
          "setup",
          "active",
          "postcopy-active",
          "completed",
        ]);
        assert.deepEqual(statuses(de, "destination"), [
          "setup",
          "active",
          "postcopy-active",
          "completed",
        ]);
      } finally {
        await se.close();
        await de.close();
      }
    });
  });
}

// One source for both recoveries (the narrow pair of hardPair, and a second destination
// like its own): after the first completes, the source runs again (`cont`, as QEMU's) and
// migrates to the second.
Deno.test("postcopy recovery: a cut link, then migrate-pause", async (t) => {
  await withAgents(async (track) => {
    const [{ src, dst }, dst2] = await Promise.all([
      hardPair(track, true),
      startLocalAgent(["--ram", "32M", "--incoming", "tcp:127.0.0.1:0"]).then(track),
    ]);
    await t.step("a cut link pauses both sides; recover on a new port completes", async () => {
      const target = Number(dst.incomingUri!.split(":").pop());
      const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port: target });
      try {
        // Slow background pages so the cut lands mid-postcopy (see hardPair).
        await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 1 << 20 });
        await src.api("POST", "/migrations", { uri: proxy.uri });
        await src.waitStatus(/active/);
        await src.api("POST", "/migrations/current/postcopy");
        await inPostcopy(src, dst);
        // Freeze the link, then cut it: nothing more arrives, so postcopy cannot end first.
        proxy.pause();
        proxy.cut();
        assert.equal((await src.waitStatus(/postcopy-paused|failed/)).status, "postcopy-paused");
        assert.equal((await dst.waitStatus(/postcopy-paused|failed/)).status, "postcopy-paused");
        // Seed refusals while paused.
        const noPause = await src.api("POST", "/migrations/current/pause");
        assert.equal(noPause.status, 409);
        const uri = await recoverOn(dst);
        const twice = await dst.api("POST", "/migrations/incoming/recover", { uri });
        assert.equal(twice.status, 409);
        assert.equal(twice.body.detail, "Migrate recovery is triggered already");
        // The rest goes at full speed (the resumed channel is held to max-bandwidth too).
        await src.api("PATCH", "/parameters", { "max-bandwidth": 0, "max-postcopy-bandwidth": 0 });
        assert.equal((await src.api("POST", "/migrations", { uri, resume: true })).status, 202);
        await completesWhole(src, dst);
      } finally {
        await proxy.close();
      }
    });

    await t.step("migrate-pause then recover; the seed's refusals", async () => {
      // hardPair's narrow settings again, the background pages slowed (see hardPair).
      assert.equal((await src.api("POST", "/machine/cont")).status, 202);
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 4 << 20,
        "downtime-limit": 20,
        "max-postcopy-bandwidth": 1 << 20,
      });
      await dst2.api("PATCH", "/capabilities", { "postcopy-blocktime": true });
      const ev = await recordEvents(src.base);
      try {
        const notPaused = await dst2.api("POST", "/migrations/incoming/recover", {
          uri: "tcp:127.0.0.1:1",
        });
        assert.equal(notPaused.status, 409);
        assert.equal(
          notPaused.body.detail,
          "Migrate recover can only be run when postcopy is paused.",
        );
        const noResume = await src.api("POST", "/migrations", {
          uri: dst2.incomingUri,
          resume: true,
        });
        assert.equal(noResume.status, 409);
        assert.equal(noResume.body.detail, "Cannot resume if there is no paused migration");
        const badPause = await src.api("POST", "/migrations/current/pause");
        assert.equal(
          badPause.body.detail,
          "migrate-pause is currently only supported during postcopy-active state",
        );
        await src.api("POST", "/migrations", { uri: dst2.incomingUri });
        await src.waitStatus(/active/);
        await src.api("POST", "/migrations/current/postcopy");
        await inPostcopy(src, dst2);
        assert.equal((await src.api("POST", "/migrations/current/pause")).status, 202);
        assert.equal((await src.waitStatus(/postcopy-paused|failed/)).status, "postcopy-paused");
        await dst2.waitStatus(/postcopy-paused/);
        const uri = await recoverOn(dst2);
        // The rest goes at full speed (the resumed channel is held to max-bandwidth too).
        await src.api("PATCH", "/parameters", { "max-bandwidth": 0, "max-postcopy-bandwidth": 0 });
        const resumed = await src.api("POST", "/migrations", { uri, resume: true });
        assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
        assert.equal((await src.waitStatus(/completed|failed/)).status, "completed");
        await until(ev, "source", "completed");
        assert.deepEqual(statuses(ev, "source"), [
          "setup",
          "active",
          "postcopy-active",
          "postcopy-paused",
          "postcopy-recover",
          "postcopy-active",
          "completed",
        ]);
      } finally {
        await ev.close();
      }
    });
  });
});
