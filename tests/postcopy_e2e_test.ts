/**
 * Issue 4 end to end: postcopy, the return path, pause-before-switchover, migrate-pause and
 * recovery between two real agents over real sockets (and a cutting proxy).
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json, startAgents, withAgents } from "./helpers/agent_process.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { freePort, listening } from "./helpers/ports.ts";
import { recordEvents, type SseRecorder } from "./helpers/sse.ts";
import { waitFor } from "./helpers/wait.ts";

function statuses(rec: SseRecorder, side: string): string[] {
  return rec.events.filter((e) => e.event === "MIGRATION" && (e.data as Json).side === side)
    .map((e) => (e.data as Json).status);
}

const until = (rec: SseRecorder, side: string, status: string) =>
  rec.waitFor((e) =>
    e.event === "MIGRATION" && (e.data as Json).side === side && (e.data as Json).status === status
  );

/**
 * A 16 MiB guest whose vCPU increments its RAM (from 1 MiB on) at full speed, against a
 * 32 MiB/s link and a 20 ms downtime limit (0.64 MiB may be left for the last pass): precopy
 * never converges. `narrow`: 32 MiB, the vCPU increments only 1..3 MiB and the link carries
 * 4 MiB/s, so a postcopy started at once begins inside the first pass, and, once the guest
 * runs on the destination, it pulls only those 2 MiB by page requests: the rest comes in the
 * background, which a test slows with max-postcopy-bandwidth (about a run of pages per 100 ms
 * window here: a second or two for the 30 MiB).
 */
async function hardPair(track: (a: AgentProcess) => AgentProcess, narrow = false) {
  const ram = narrow ? "32M" : "16M";
  const [dst, src] = await startAgents(
    track,
    ["--ram", ram, "--incoming", "tcp:127.0.0.1:0"],
    [
      "--ram",
      ram,
      "--fill",
      "random",
      "--workload",
      narrow ? "increment,start=1M,end=3M" : "increment",
      "-S",
    ],
  );
  await src.api("PATCH", "/parameters", {
    "max-bandwidth": (narrow ? 4 : 32) << 20,
    "downtime-limit": 20,
    "max-postcopy-bandwidth": 32 << 20,
  });
  assert.equal((await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
  await dst.api("PATCH", "/capabilities", { "postcopy-blocktime": true });
  // Started paused (-S): the vCPU spins from here on, not while the agents start.
  assert.equal((await src.api("POST", "/machine/cont")).status, 202);
  return { src, dst };
}

/** Waits until both sides are in postcopy: the guest runs on the destination, pages flow. */
async function inPostcopy(src: AgentProcess, dst: AgentProcess): Promise<void> {
  await src.waitStatus(/^postcopy-active$/);
  assert.equal((await dst.waitStatus(/^(postcopy-active|completed)$/)).status, "postcopy-active");
}

/** Asks the destination to listen on a new port for the recovery and waits until it does. */
async function recoverOn(dst: AgentProcess): Promise<string> {
  const p = freePort();
  const uri = `tcp:127.0.0.1:${p}`;
  assert.equal((await dst.api("POST", "/migrations/incoming/recover", { uri })).status, 202);
  await waitFor(`the destination listening on ${uri} to recover`, () => listening(p));
  return uri;
}

Deno.test("postcopy: a guest that does not converge in precopy completes in postcopy", async () => {
  await withAgents(async (track) => {
    const { src, dst } = await hardPair(track);
    const se = await recordEvents(src.base);
    const de = await recordEvents(dst.base, "0");
    try {
      // Before the migration starts, postcopy is refused with the seed's text.
      const early = await src.api("POST", "/migrations/current/postcopy");
      assert.equal(early.status, 409);
      assert.equal(early.body.detail, "Postcopy must be started after migration has been started");
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
      assert.deepEqual(statuses(se, "source"), ["setup", "active", "postcopy-active", "completed"]);
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

Deno.test("postcopy: a cut link pauses both sides; recover on a new port completes", async () => {
  await withAgents(async (track) => {
    const { src, dst } = await hardPair(track, true);
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
      await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 0 });
      assert.equal((await src.api("POST", "/migrations", { uri, resume: true })).status, 202);
      const info = await src.waitStatus(/completed|failed/);
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
      await dst.api("POST", "/machine/stop");
      assert.deepEqual(
        (await src.api("GET", "/machine/digest")).body.blocks,
        (await dst.api("GET", "/machine/digest")).body.blocks,
      );
    } finally {
      await proxy.close();
    }
  });
});

Deno.test("postcopy: migrate-pause then recover; the seed's refusals", async () => {
  await withAgents(async (track) => {
    const { src, dst } = await hardPair(track, true);
    const ev = await recordEvents(src.base);
    try {
      const notPaused = await dst.api("POST", "/migrations/incoming/recover", {
        uri: "tcp:127.0.0.1:1",
      });
      assert.equal(notPaused.status, 409);
      assert.equal(
        notPaused.body.detail,
        "Migrate recover can only be run when postcopy is paused.",
      );
      const noResume = await src.api("POST", "/migrations", { uri: dst.incomingUri, resume: true });
      assert.equal(noResume.status, 409);
      assert.equal(noResume.body.detail, "Cannot resume if there is no paused migration");
      const badPause = await src.api("POST", "/migrations/current/pause");
      assert.equal(
        badPause.body.detail,
        "migrate-pause is currently only supported during postcopy-active state",
      );
      await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 1 << 20 });
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      await src.waitStatus(/active/);
      await src.api("POST", "/migrations/current/postcopy");
      await inPostcopy(src, dst);
      assert.equal((await src.api("POST", "/migrations/current/pause")).status, 202);
      assert.equal((await src.waitStatus(/postcopy-paused|failed/)).status, "postcopy-paused");
      await dst.waitStatus(/postcopy-paused/);
      const uri = await recoverOn(dst);
      await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 0 });
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

Deno.test("pause-before-switchover: precopy and postcopy sequences as QEMU's", async () => {
  await withAgents(async (track) => {
    // Precopy: setup, active, pre-switchover, device, completed.
    const [dst, src] = await startAgents(
      track,
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--fill", "random", "--workload", "idle"],
    );
    const ev = await recordEvents(src.base);
    try {
      await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
      await src.api("PATCH", "/capabilities", { "pause-before-switchover": true });
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      await src.waitStatus(/pre-switchover/);
      const wrong = await src.api("POST", "/migrations/current/continue", { state: "active" });
      assert.equal(wrong.status, 409);
      assert.equal(wrong.body.detail, "Migration not in expected state: pre-switchover");
      assert.equal((await src.api("GET", "/machine")).body.runstate, "finish-migrate");
      assert.equal(
        (await src.api("POST", "/migrations/current/continue", { state: "pre-switchover" })).status,
        202,
      );
      assert.equal((await src.waitStatus(/completed|failed/)).status, "completed");
      await until(ev, "source", "completed");
      assert.deepEqual(statuses(ev, "source"), [
        "setup",
        "active",
        "pre-switchover",
        "device",
        "completed",
      ]);
    } finally {
      await ev.close();
    }
  });
  await withAgents(async (track) => {
    // Postcopy: setup, active, pre-switchover, postcopy-active, completed; cancel from pre-switchover.
    const { src, dst } = await hardPair(track);
    const ev = await recordEvents(src.base);
    try {
      await src.api("PATCH", "/capabilities", { "pause-before-switchover": true });
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      await src.waitStatus(/active/);
      await src.api("POST", "/migrations/current/postcopy");
      await src.waitStatus(/pre-switchover/);
      await src.api("POST", "/migrations/current/continue", { state: "pre-switchover" });
      assert.equal((await src.waitStatus(/completed|failed/)).status, "completed");
      await until(ev, "source", "completed");
      assert.deepEqual(statuses(ev, "source"), [
        "setup",
        "active",
        "pre-switchover",
        "postcopy-active",
        "completed",
      ]);
    } finally {
      await ev.close();
    }
  });
});

Deno.test("pause-before-switchover: cancel from pre-switchover leaves the source running", async () => {
  await withAgents(async (track) => {
    const [dst, src] = await startAgents(
      track,
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--fill", "random", "--workload", "increment", "-S"],
    );
    await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
    await src.api("PATCH", "/capabilities", { "pause-before-switchover": true });
    await src.api("POST", "/machine/cont");
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    await src.waitStatus(/pre-switchover/);
    await src.api("POST", "/migrations/current/cancel");
    assert.equal((await src.waitStatus(/cancelled|failed|completed/)).status, "cancelled");
    assert.equal((await src.api("GET", "/machine")).body.runstate, "running");
    assert.equal((await dst.api("GET", "/machine")).body.runstate, "inmigrate");
  });
});

Deno.test("return path: a destination that fails to load turns the source failed", async () => {
  await withAgents(async (track) => {
    const [dst, src] = await startAgents(
      track,
      ["--ram-block", "pc.ram=8M", "--ram-block", "vga=1M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--fill", "random", "--workload", "idle"],
    );
    await src.api("PATCH", "/capabilities", { "return-path": true });
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    const info = await src.waitStatus(/completed|failed/);
    assert.equal(info.status, "failed");
    assert.equal((await src.api("GET", "/machine")).body.runstate, "running");
  });
});
