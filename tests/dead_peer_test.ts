/**
 * Issue 18, a dead peer noticed, with real agents: a peer frozen by SIGSTOP keeps its sockets
 * open and answers nothing. With a short link timeout (FERRY_LINK_TIMEOUT_MS), in precopy the
 * live side fails by itself — the source with its guest running and its memory intact — and
 * once the frozen side runs again it fails too and a retry completes; in postcopy the live
 * side pauses by itself, the other pauses once it runs again, and recover + resume complete
 * the migration. Also with multifd (the page channels' writes stall). The cases are steps of
 * one source: after a completed migration `cont` runs its guest again for the next, each
 * against a destination of its own (the multifd attempt's, failed, waits again for postcopy).
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json, startAgent, type Track } from "../harness/agent_process.ts";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  sentAtLeast,
  SLOW,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

/** Link timeout of these tests: a dead peer is noticed within about this (plus buffers). */
const TIMEOUT_MS = 1500;
const ENV = { FERRY_LINK_TIMEOUT_MS: String(TIMEOUT_MS) };
const RAM = "32M";

/** Starts `n` destinations (listening, their guests waiting) and one source, all at once. */
function startAll(
  track: Track,
  n: number,
): Promise<AgentProcess[]> {
  const dst = ["--ram", RAM, "--incoming", "tcp:127.0.0.1:0"];
  const src = ["--ram", RAM, "--fill", "random", "--workload", "idle"];
  return Promise.all(
    [src, ...Array(n).fill(dst)].map((args) => startAgent(args, [], undefined, ENV).then(track)),
  );
}

/** The source after a completed migration: `cont` runs its guest again, to migrate anew. */
async function contAfterCompleted(src: AgentProcess): Promise<void> {
  assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
  assert.equal((await src.api("POST", "/machine/cont")).status, 202);
}

/** Freezes `a` (SIGSTOP); the returned function thaws it (SIGCONT), once. */
function freeze(a: AgentProcess): () => void {
  Deno.kill(a.pid, "SIGSTOP");
  let frozen = true;
  return () => {
    if (!frozen) return;
    frozen = false;
    Deno.kill(a.pid, "SIGCONT");
  };
}

/** Runs `fn` with `a` frozen; thaws it afterwards whatever happens. */
async function whileFrozen<T>(a: AgentProcess, fn: (thaw: () => void) => Promise<T>): Promise<T> {
  const thaw = freeze(a);
  try {
    return await fn(thaw);
  } finally {
    thaw();
  }
}

/** Both agents with postcopy-ram, a slow precopy, then postcopy (slow too): postcopy-active. */
async function intoPostcopy(src: AgentProcess, dst: AgentProcess): Promise<void> {
  for (const a of [src, dst]) {
    assert.equal((await a.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
  }
  await src.api("PATCH", "/parameters", {
    "max-bandwidth": SLOW,
    "max-postcopy-bandwidth": 4 << 20,
  });
  assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
  await sentAtLeast(src, 2 << 20);
  assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
  await src.waitStatus(/^postcopy-active$/, 20_000);
  await dst.waitStatus(/^postcopy-active$/, 20_000);
}

/** Recover on a new port and resume: the paused postcopy completes with equal memory. */
async function recoverAndComplete(src: AgentProcess, dst: AgentProcess): Promise<void> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const uri = `tcp:127.0.0.1:${(l.addr as Deno.NetAddr).port}`;
  l.close();
  const r = await dst.api<Json>("POST", "/migrations/incoming/recover", { uri });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 0 });
  const m = await src.api<Json>("POST", "/migrations", { uri, resume: true });
  assert.equal(m.status, 202, JSON.stringify(m.body));
  const end = await src.waitStatus(/^(completed|failed|cancelled)$/).catch((e) => {
    // What both agents said, for a resume that never completes.
    const tail = (a: AgentProcess) => a.log().slice(-2500);
    throw new Error(`${e.message}\nsource log:\n${tail(src)}\ndestination log:\n${tail(dst)}`);
  });
  assert.equal(end.status, "completed", JSON.stringify(end));
  assert.equal((await dst.waitStatus(/^(completed|failed)$/)).status, "completed");
  assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
  assert.deepEqual(await digest(dst), await digest(src));
}

Deno.test("dead peer: one source meets a frozen peer five ways (precopy, multifd, postcopy)", async (t) => {
  await withAgents(async (track) => {
    const [src, d1, d2, d3, d4] = await startAll(track, 4);

    await t.step(
      "a destination frozen mid-precopy fails the source by itself; it runs on; a retry completes",
      async () => {
        const dst = d1;
        const before = await digest(src);
        const attempt = await waitingAttempt(dst);
        // Half of SLOW: on a busy host the freeze may come seconds after 4 MiB went, and what
        // is left must still be more than the sockets buffer (else, without a return path,
        // the source completes into them; seen once in a full run).
        await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW / 2 });
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        await sentAtLeast(src, 4 << 20);
        await whileFrozen(dst, async () => {
          const info = await expectSourceIntact(src, before, "failed");
          assert.match(info["error-desc"], /the peer stopped taking data/);
        });
        // Running again, the destination finds its stream gone: that attempt fails too.
        await expectDestinationFailed(dst, attempt);
        await expectMigrationCompletes(src, dst);
        await d1.stop();
      },
    );

    await t.step(
      "a source frozen mid-precopy fails the destination by itself; the source fails and runs on",
      async () => {
        const dst = d2;
        await contAfterCompleted(src);
        const before = await digest(src);
        const attempt = await waitingAttempt(dst);
        await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        await sentAtLeast(src, 4 << 20);
        await whileFrozen(src, async () => {
          const info = await expectDestinationFailed(dst, attempt);
          assert.match(info["error-desc"], /nothing received from the peer for 1.5 s/);
        });
        await expectSourceIntact(src, before, "failed");
        await expectMigrationCompletes(src, dst);
        await d2.stop();
      },
    );

    await t.step(
      "a destination frozen with multifd fails the source (the page channels stall)",
      async () => {
        const dst = d3;
        await contAfterCompleted(src);
        const before = await digest(src);
        const attempt = await waitingAttempt(dst);
        for (const a of [src, dst]) await a.api("PATCH", "/capabilities", { "x-multifd": true });
        await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW, "x-multifd-channels": 2 });
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        await sentAtLeast(src, 4 << 20);
        await whileFrozen(dst, async () => {
          const info = await expectSourceIntact(src, before, "failed");
          assert.match(info["error-desc"], /the peer stopped taking data|no answer from the peer/);
        });
        await expectDestinationFailed(dst, attempt);
      },
    );

    await t.step(
      "a destination frozen in postcopy pauses the source; then both pause, recover and resume complete",
      async () => {
        const dst = d3;
        // The multifd attempt failed: the same destination waits again, the source runs on.
        for (const a of [src, dst]) await a.api("PATCH", "/capabilities", { "x-multifd": false });
        await intoPostcopy(src, dst);
        await whileFrozen(dst, async () => {
          const info = await src.waitStatus(/^(postcopy-paused|failed|completed)$/, 30_000);
          // Nobody asked for a pause: the source noticed by itself.
          assert.equal(info.status, "postcopy-paused", JSON.stringify(info));
        });
        await dst.waitStatus(/^postcopy-paused$/, 30_000);
        await recoverAndComplete(src, dst);
        await d3.stop();
      },
    );

    await t.step(
      "a source frozen in postcopy pauses the destination; then both pause, recover and resume complete",
      async () => {
        const dst = d4;
        await contAfterCompleted(src);
        await intoPostcopy(src, dst);
        await whileFrozen(src, async () => {
          const info = await dst.waitStatus(/^(postcopy-paused|failed|completed)$/, 30_000);
          // Nobody asked for a pause: the destination noticed by itself.
          assert.equal(info.status, "postcopy-paused", JSON.stringify(info));
        });
        await src.waitStatus(/^postcopy-paused$/, 30_000);
        await recoverAndComplete(src, dst);
        await d4.stop();
      },
    );
  });
});
