/**
 * Issue 6, graceful shutdown with real agent processes: SIGTERM on a source in the middle
 * of a migration cancels it cleanly (SSE subscribers see cancelling then cancelled, the
 * destination's guest never runs), SIGINT on a destination closes its listeners while it
 * winds down, both exit 0 even with SSE streams open (within a generous deadline: a hang
 * fails), and a second signal exits at once (with its own exit code, 130, while the first
 * shutdown still waits for the open streams).
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json } from "../harness/agent_process.ts";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  incomingPort,
  sentAtLeast,
  SLOW,
  startFaultAgents,
  startLocalFaultAgents,
  startSource,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";
import { recordEvents } from "./helpers/sse.ts";
import { waitFor } from "../harness/wait.ts";

function apiPort(a: AgentProcess): number {
  return Number(new URL(a.base).port);
}

/** True when nothing accepts connections on `port` any more. */
async function refuses(port: number): Promise<boolean> {
  try {
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    c.close();
    return false;
  } catch (e) {
    return e instanceof Deno.errors.ConnectionRefused;
  }
}

/** The exit status, or a failure if the process is still running after `ms`. */
async function exitWithin(a: AgentProcess, ms: number): Promise<Deno.CommandStatus> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`still running ${ms} ms after the signal`)), ms);
  });
  try {
    return await Promise.race([a.exited, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Whether the process is still running (without waiting). */
async function alive(a: AgentProcess): Promise<boolean> {
  const gone = await Promise.race([a.exited.then(() => true), Promise.resolve(false)]);
  return !gone;
}

Deno.test("shutdown: SIGTERM mid-migration cancels it cleanly and exits 0, SSE streams open", async () => {
  await withAgents(async (track) => {
    // src2: the source whose migration the destination takes afterwards.
    // The signalled source is a process; its peers live in this one.
    const [[src], [dst, src2]] = await Promise.all([
      startFaultAgents(track, "source"),
      startLocalFaultAgents(track, "destination", "source"),
    ]);
    const ev = await recordEvents(src.base);
    const idle = await recordEvents(src.base); // a second subscriber that only listens
    try {
      const attempt = await waitingAttempt(dst);
      await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
      const id =
        (await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri })).body["x-id"];
      await sentAtLeast(src, 1 << 20);
      src.kill("SIGTERM");
      const status = await exitWithin(src, 30_000);
      assert.equal(status.code, 0, `exit status ${JSON.stringify(status)}`);
      // The migration was cancelled (the guest resumed on the source) before the exit.
      const seen = ev.events.filter((e) => e.event === "MIGRATION" && (e.data as Json).id === id)
        .map((e) => (e.data as Json).status);
      assert.deepEqual(seen, ["setup", "active", "cancelling", "cancelled"]);
      assert.ok(await refuses(apiPort(src)));
      // The destination saw the stream end: failed, guest never ran, listening again; a new
      // source migrates into it.
      await expectDestinationFailed(dst, attempt);
      await expectMigrationCompletes(src2, dst);
    } finally {
      await ev.close();
      await idle.close();
    }
  });
});

Deno.test("shutdown: SIGINT on a destination closes its listeners, exits 0; the source runs on", async () => {
  await withAgents(async (track) => {
    // The signalled destination is a process; the source lives in this one.
    const [[dst], [src]] = await Promise.all([
      startFaultAgents(track, "destination"),
      startLocalFaultAgents(track, "source"),
    ]);
    const ev = await recordEvents(dst.base); // keeps the agent in its grace period a while
    try {
      const before = await digest(src);
      await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      await dst.waitStatus(/^active$/, 15_000);
      dst.kill("SIGINT");
      // While it winds down (its SSE stream open: a grace of 1.5 s), neither the API nor the
      // incoming port takes connections.
      const seen = await waitFor("the listeners to close, or the process to end", async () => {
        if (!(await alive(dst))) return "ended";
        const closed = await refuses(incomingPort(dst)) && await refuses(apiPort(dst));
        return closed && await alive(dst) && "closed while running";
      }, { intervalMs: 25 });
      assert.equal(seen, "closed while running", "listeners closed while it was shutting down");
      const status = await exitWithin(dst, 30_000);
      assert.equal(status.code, 0, JSON.stringify(status));
      await expectSourceIntact(src, before, "failed");
    } finally {
      await ev.close();
    }
  });
});

Deno.test("shutdown: a second signal exits at once", async () => {
  await withAgents(async (track) => {
    const src = track(await startSource());
    const ev = await recordEvents(src.base); // an open SSE stream: the first stop waits a grace
    try {
      src.kill("SIGTERM");
      // The first signal is being handled once the API listener is closed.
      await waitFor("the API port to close after SIGTERM", () => refuses(apiPort(src)));
      assert.ok(await alive(src), "the first signal's shutdown is still winding down");
      src.kill("SIGTERM");
      // 130 is the second signal's exit; the first shutdown, had it finished, exits 0.
      const status = await exitWithin(src, 30_000);
      assert.ok(status.code === 130 || status.code === 1, JSON.stringify(status));
    } finally {
      await ev.close();
    }
  });
});
