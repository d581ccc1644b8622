/**
 * Issue 21 with real agents over real sockets: COLO entered from a precopy (status colo on
 * both sides, the primary's guest running, the secondary running the guest it received),
 * periodic checkpoints counted and x-checkpoint-delay changed live, `kill -9` of the primary
 * (the secondary takes over by itself and its guest goes on), a destination without x-colo
 * (the primary's guest runs on), a frozen primary (SIGSTOP: the secondary holds, its guest
 * stopped; lost-heartbeat on the secondary; the primary, woken, stops), a link cut, and
 * lost-heartbeat on the primary; the output compare (increment: records released only when
 * equal on both sides, no triggered checkpoint; a host-clock workload: compare-triggered
 * checkpoints). Every record a client got from the primary — from before COLO too — is in the
 * secondary's output, equal (while COLO runs, and after the primary's death or a link cut, when
 * it goes on with the next seq); with the host clock the secondary's guest writes every record
 * differently, so only the records the checkpoints carry can make that hold. Five agents at a
 * time, passed along: A → B (B frozen a moment so that it falls behind, which a checkpoint then
 * releases; A killed), B → C (C refuses, then B frozen), C → F through a proxy
 * (cut), E (in A's place, a host-clock guest) → D (lost-heartbeat on the primary E).
 */
import assert from "node:assert/strict";
import { type Json, startAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import {
  checkpoints,
  colo,
  enterColo,
  ENV,
  exitSeen,
  GUEST,
  holdsEvery,
  INCOMING,
  incrementOk,
  info,
  machine,
  outputOf,
  outputs,
  progresses,
} from "./helpers/colo_kit.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { recordEvents, type SseRecorder } from "./helpers/sse.ts";
import { waitFor } from "../harness/wait.ts";

Deno.test("colo: enter, checkpoints, live delay, failover on the primary's death and on lost-heartbeat", async (t) => {
  await withAgents(async (track) => {
    // Processes for those killed or frozen (A, B); the others live in this one
    // (tests/helpers/local_agent.ts).
    const [[a, b], [c, d, f]] = await Promise.all([
      Promise.all([
        // Paced so that the precopy converges on a busy 2-core host; a 2 MiB range: ten
        // passes, so ten output records, a second.
        [...GUEST, "--fill", "random", "--workload", "increment,rate=5000,start=1M,end=3M"],
        INCOMING,
      ].map((args) => startAgent(args, [], undefined, ENV).then(track))),
      Promise.all(
        [INCOMING, INCOMING, INCOMING].map((args) =>
          startLocalAgent(args, { env: ENV }).then(track)
        ),
      ),
    ]);
    const bEvents = await recordEvents(b.base);
    const aEvents = await recordEvents(a.base);
    /** A client of the primary's output. */
    const client: { aOut: SseRecorder | null } = { aOut: null };
    try {
      await t.step(
        "both sides enter colo; checkpoints are counted; a changed delay applies at once",
        async () => {
          await outputOf(a, 1); // a record before COLO: clients got it, B must hold it too
          await enterColo(a, b);
          for (const e of [aEvents, bEvents]) {
            await e.waitFor((x) => x.event === "MIGRATION" && (x.data as Json).status === "colo");
          }
          // Both guests run between checkpoints (runstate colo during one).
          for (const [x, who] of [[a, "primary"], [b, "secondary"]] as const) {
            await waitFor(`the ${who}'s guest to run`, async () => {
              const rs = (await machine(x)).runstate;
              assert.match(rs, /^(running|colo)$/);
              return rs === "running";
            });
          }
          await progresses(a, "the primary");
          await progresses(b, "the secondary");
          // The standby does not migrate its guest away (that would make a third copy).
          const third = await b.api("POST", "/migrations", { uri: c.incomingUri });
          assert.equal(third.status, 409, JSON.stringify(third.body));
          assert.match(third.body.detail, /COLO secondary/);
          // Output compare: increment writes the same records on both sides, so every record
          // is released when the secondary's equal one comes, and no checkpoint is triggered.
          const aOut = await recordEvents(a.base, undefined, "/machine/output");
          client.aOut = aOut;
          const compared = await waitFor("three records compared", async () => {
            const x = (await info(a))["x-colo"];
            return x["records-compared"] >= 3 ? x : undefined;
          });
          assert.equal(compared["checkpoints-triggered"], 0, JSON.stringify(compared));
          assert.equal(compared["records-mismatched"], 0, JSON.stringify(compared));
          // A record from before COLO reached the client (B holds A's backlog, unreleased
          // while COLO runs: the kill -9 step reads it there after the failover).
          assert.match(outputs(aOut).get(1)!, /^increment pass \d+ pages \d+\n$/);
          const firstCounters = await checkpoints(a, 3);
          const c0 = firstCounters;
          assert.ok(c0["checkpoints-periodic"] >= 3, JSON.stringify(c0));
          assert.ok(c0["checkpoint-bytes-last"] > 0, JSON.stringify(c0));
          assert.ok(c0["pause-p99-ms"] >= c0["pause-p50-ms"], JSON.stringify(c0));
          assert.ok((await info(b))["x-colo"].checkpoints >= 3, "the secondary applied them");
          const metrics = await (await fetch(`${a.base}/metrics`)).text();
          const counted = Number(/^ferry_colo_checkpoints (\d+)$/m.exec(metrics)?.[1]);
          assert.ok(counted >= 3, "GET /metrics counts the checkpoints");
          // A long delay: one checkpoint at once (the change), then none for a while.
          await a.api("PATCH", "/parameters", { "x-checkpoint-delay": 600_000 });
          const changed = await waitFor("the checkpoint the changed delay starts", async () => {
            const x = (await info(a))["x-colo"];
            return x["checkpoints-triggered"] === 1 ? x : undefined;
          });
          await new Promise((r) => setTimeout(r, 1000));
          assert.equal((await info(a))["x-colo"].checkpoints, changed.checkpoints);
          // Back to 100 ms: at once again, then periodic ones follow.
          await a.api("PATCH", "/parameters", { "x-checkpoint-delay": 100 });
          await checkpoints(a, changed.checkpoints + 3);
          assert.equal((await info(a))["x-colo"]["checkpoints-triggered"], 2);
        },
      );

      await t.step("kill -9 of the primary: the secondary takes over by itself", async () => {
        // B falls behind: frozen while A's guest writes records, which A holds; the checkpoint
        // after B wakes carries and releases them, and B's guest, restarted from A's state,
        // never writes them itself.
        const aOut = client.aOut!;
        const before = Math.max(...outputs(aOut).keys());
        // No checkpoint in flight when B freezes (one caught past its reply would keep A's
        // guest stopped, writing nothing to hold): a long delay, after the one it starts.
        const triggered = (await info(a))["x-colo"]["checkpoints-triggered"];
        await a.api("PATCH", "/parameters", { "x-checkpoint-delay": 600_000 });
        await waitFor("the checkpoint the changed delay starts, done", async () => {
          return (await info(a))["x-colo"]["checkpoints-triggered"] > triggered;
        });
        b.kill("SIGSTOP");
        try {
          await waitFor("the primary to hold three records", async () => {
            return (await info(a))["x-colo"]["records-held"] >= 3;
          }).catch(async (e) => {
            const seen = {
              "x-colo": (await info(a))["x-colo"],
              runstate: (await machine(a)).runstate,
            };
            throw new Error(`${e.message}; the primary: ${JSON.stringify(seen)}`);
          });
        } finally {
          b.kill("SIGCONT");
        }
        // A checkpoint at once (the delay changed), while B is still behind: it carries them.
        await a.api("PATCH", "/parameters", { "x-checkpoint-delay": 100 });
        await aOut.waitFor((e) => Number(e.id) >= before + 3);
        const received = outputs(aOut);
        a.kill("SIGKILL");
        assert.equal((await a.exited).signal, "SIGKILL");
        await waitFor("the secondary to leave colo", async () => (await colo(b)).mode === "none");
        assert.deepEqual(await colo(b), {
          mode: "none",
          "last-mode": "secondary",
          reason: "error",
        });
        await exitSeen(bEvents, "secondary", "error");
        assert.equal((await info(b)).status, "completed");
        assert.equal((await machine(b)).runstate, "running");
        await progresses(b, "the secondary after the failover");
        // Every record a client received from the primary is in the secondary's output,
        // equal, and the secondary goes on with the next seq: no gap, no repeat.
        await holdsEvery(b, received, true);
        await incrementOk(b);
      });

      await t.step(
        "a destination without x-colo refuses COLO, a cancel before COLO: the primary runs on",
        async () => {
          await b.api("PATCH", "/parameters", { "x-checkpoint-delay": 200 });
          assert.equal((await b.api("POST", "/migrations", { uri: c.incomingUri })).status, 202);
          const failed = await b.waitStatus(/^(colo|completed|failed)$/);
          assert.equal(failed.status, "failed");
          assert.match(failed["error-desc"], /COLO is not enabled on the destination/);
          assert.equal((await machine(b)).runstate, "running");
          await progresses(b, "the primary after the refusal");
          // With x-colo on both, a precopy cancelled before the switchover: the guest runs on.
          assert.equal((await c.api("PATCH", "/capabilities", { "x-colo": true })).status, 200);
          await b.api("PATCH", "/parameters", { "max-bandwidth": 1 << 20 });
          assert.equal((await b.api("POST", "/migrations", { uri: c.incomingUri })).status, 202);
          await b.waitStatus(/^active$/);
          assert.equal((await b.api("POST", "/migrations/current/cancel")).status, 202);
          assert.equal(
            (await b.waitStatus(/^(cancelled|colo|completed|failed)$/)).status,
            "cancelled",
          );
          assert.equal((await machine(b)).runstate, "running");
          assert.equal((await colo(b)).mode, "none");
          await progresses(b, "the primary after the cancel");
        },
      );

      await t.step(
        "a frozen primary: the secondary holds; lost-heartbeat there; the primary stops",
        async () => {
          await enterColo(b, c);
          await checkpoints(b, 2);
          b.kill("SIGSTOP"); // silent: no EOF, no RST
          try {
            await waitFor(
              "the secondary to hold",
              async () => (await colo(c)).reason === "processing",
            );
            assert.equal((await colo(c)).mode, "secondary", "no proof the primary died: it holds");
            assert.equal((await machine(c)).runstate, "colo", "its guest stopped");
            const r = await c.api("POST", "/colo/lost-heartbeat");
            assert.equal(r.status, 202, JSON.stringify(r.body));
            await waitFor(
              "the secondary to leave colo",
              async () => (await colo(c)).mode === "none",
            );
            assert.deepEqual(await colo(c), {
              mode: "none",
              "last-mode": "secondary",
              reason: "request",
            });
            assert.equal((await machine(c)).runstate, "running");
            await progresses(c, "the secondary alone");
          } finally {
            b.kill("SIGCONT");
          }
          // The primary wakes up, finds the secondary's EXIT, and stops: one guest runs.
          await waitFor("the primary to leave colo", async () => (await colo(b)).mode === "none");
          assert.deepEqual(await colo(b), {
            mode: "none",
            "last-mode": "primary",
            reason: "request",
          });
          await exitSeen(bEvents, "primary", "request");
          assert.equal((await machine(b)).runstate, "postmigrate", "the guest moved to c");
          assert.equal((await b.waitStatus(/^(completed|failed)$/)).status, "completed");
          await incrementOk(c);
        },
      );

      await t.step(
        "a link cut: the secondary runs on, with every record the primary released",
        async () => {
          // C runs the guest alone now; F is its secondary through a proxy that cuts the link.
          const port = Number(f.incomingUri!.split(":").at(-1));
          const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port });
          try {
            await enterColo(c, f, proxy.uri);
            // A record per pass, numbered as the passes: those before COLO are at most this.
            const beforeColo = (await machine(c)).workload.passes + 1;
            await checkpoints(c, 2);
            const received = await outputOf(c, beforeColo + 1); // one released in COLO too
            proxy.cut();
            await waitFor(
              "the secondary to leave colo",
              async () => (await colo(f)).mode === "none",
            );
            assert.deepEqual(await colo(f), {
              mode: "none",
              "last-mode": "secondary",
              reason: "error",
            });
            assert.equal((await machine(f)).runstate, "running");
            await holdsEvery(f, received, true);
          } finally {
            await proxy.close();
          }
        },
      );

      await t.step(
        "a host-clock workload: compare-triggered checkpoints; lost-heartbeat on the primary",
        async () => {
          // A's place (it was killed): a guest whose output carries the host clock, so that
          // the two sides' records differ and the output compare triggers checkpoints.
          const e = await startLocalAgent(
            [...GUEST, "--workload", "random,rate=4000,clock=on"],
            { env: ENV },
          ).then(track);
          await enterColo(e, d);
          // A record every 1000 pages: those before COLO are at most this many (+1: the pages
          // are published a chunk after the record).
          const beforeColo = Math.floor((await machine(e)).workload["pages-written"] / 1000) + 1;
          const triggered = await waitFor("compare-triggered checkpoints", async () => {
            const x = (await info(e))["x-colo"];
            return x["checkpoints-triggered"] >= 2 ? x : undefined;
          });
          assert.ok(triggered["records-mismatched"] >= 1, JSON.stringify(triggered));
          assert.ok(triggered["records-compared"] >= triggered["records-mismatched"]);
          // What a client got from E, up to a record E's guest wrote in COLO (held, released
          // by a checkpoint: D's guest wrote it with its own clock). D keeps its own unshown
          // while COLO runs (wasm_kvstore_test reads the primary's in place of them after a
          // failover).
          const out = await outputOf(e, beforeColo + 1);
          assert.match(out.get(beforeColo + 1)!, /^random pages \d+ clock \d+\n$/);
          const r = await e.api("POST", "/colo/lost-heartbeat");
          assert.equal(r.status, 202, JSON.stringify(r.body));
          await waitFor("the primary to leave colo", async () => (await colo(e)).mode === "none");
          assert.deepEqual(await colo(e), {
            mode: "none",
            "last-mode": "primary",
            reason: "request",
          });
          assert.equal((await e.waitStatus(/^(completed|failed)$/)).status, "completed");
          assert.equal((await machine(e)).runstate, "running");
          await progresses(e, "the primary alone");
          await waitFor("the secondary to stop", async () => (await colo(d)).mode === "none");
          assert.equal((await colo(d)).reason, "request");
          assert.equal((await machine(d)).runstate, "paused");
          const again = await d.api("POST", "/colo/lost-heartbeat");
          assert.equal(again.status, 409);
          assert.equal(again.headers.get("content-type"), "application/problem+json");
        },
      );
    } finally {
      await Promise.all([aEvents.close(), bEvents.close(), client.aOut?.close()]);
    }
  });
});
