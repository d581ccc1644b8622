/**
 * Issue 6, cancel at every state of a precopy migration, from setup to device, with real
 * agents: the source goes through cancelling to cancelled (SSE shows the exact sequence),
 * its guest runs on with its memory intact, the destination's guest never runs, and a
 * second migration to the same destination completes.
 */
import assert from "node:assert/strict";
import { type Json, markAttempt, waitNextEnd } from "../harness/agent_process.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import {
  destinationIdle,
  digest,
  expectSourceIntact,
  incomingPort,
  sentAtLeast,
  SLOW,
  startLocalFaultAgents,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";
import { recordEvents, type SseRecorder } from "./helpers/sse.ts";

/** The source's MIGRATION statuses for migration `id`, in order. */
function sequence(ev: SseRecorder, id: string): string[] {
  return ev.events.filter((e) => e.event === "MIGRATION" && (e.data as Json).id === id)
    .map((e) => (e.data as Json).status);
}

/**
 * One pair for every state: a source whose guest is idle (its digest is fixed) and a
 * destination behind a cutting proxy. Each step brings a migration to its state and cancels
 * it; the source runs on intact and the destination listens again, so the next step migrates
 * over the same pair, and the last one (cancel in device) completes.
 */
Deno.test("faults: cancel at every state of a precopy migration", async (t) => {
  await withAgents(async (track) => {
    const [dst, src] = await startLocalFaultAgents(track, "destination", "source");
    const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port: incomingPort(dst) });
    const ev = await recordEvents(src.base);
    try {
      const before = await digest(src);
      await waitingAttempt(dst);

      /**
       * Starts a migration through the proxy, lets `reach` bring it to the state under test,
       * cancels, and checks everything the issue asks for afterwards.
       */
      const cancelIn = async (
        expected: string[],
        setup: () => Promise<void>,
        reach: () => Promise<void>,
      ) => {
        await destinationIdle(dst);
        await setup();
        const r = await src.api<Json>("POST", "/migrations", { uri: proxy.uri });
        assert.equal(r.status, 202, JSON.stringify(r.body));
        const id = r.body["x-id"];
        await reach();
        assert.equal((await src.api("POST", "/migrations/current/cancel")).status, 202);
        await expectSourceIntact(src, before, "cancelled");
        await ev.waitFor((e) =>
          e.event === "MIGRATION" && (e.data as Json).id === id &&
          (e.data as Json).status === "cancelled"
        );
        assert.deepEqual(sequence(ev, id), expected);
        // Whatever reached the destination, its guest never ran; it listens again.
        proxy.resume();
        proxy.cut();
        await destinationIdle(dst);
        assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "inmigrate");
      };

      await t.step("cancel in setup", async () => {
        // Eight multifd channels, each a Worker and a connection, make setup last long enough.
        await cancelIn(
          ["setup", "cancelling", "cancelled"],
          async () => {
            await src.api("PATCH", "/capabilities", { "x-multifd": true });
            await src.api("PATCH", "/parameters", { "x-multifd-channels": 8 });
          },
          async () => {
            assert.equal((await src.api<Json>("GET", "/migrations/current")).body.status, "setup");
          },
        );
        await src.api("PATCH", "/capabilities", { "x-multifd": false });
      });

      await t.step("cancel in active", async () => {
        await cancelIn(
          ["setup", "active", "cancelling", "cancelled"],
          async () => void await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW }),
          () => sentAtLeast(src, 2 << 20),
        );
      });

      await t.step("cancel in pre-switchover", async () => {
        await cancelIn(
          ["setup", "active", "pre-switchover", "cancelling", "cancelled"],
          async () => {
            await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
            await src.api("PATCH", "/capabilities", { "pause-before-switchover": true });
          },
          async () => {
            await src.waitStatus(/^pre-switchover$/, 30_000);
            assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "finish-migrate");
          },
        );
      });

      await t.step(
        "cancel in device, past the point of no return, is refused; the guest moves",
        async () => {
          // With a return path the source stays in `device` until the destination's SHUT. Once
          // the device state has left, the destination may run the guest: a cancel there is
          // refused (409), and the migration completes when the link comes back: one guest,
          // never two. After three cancelled attempts, the destination takes this one whole.
          await destinationIdle(dst);
          await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
          await src.api("PATCH", "/capabilities", {
            "pause-before-switchover": true,
            "return-path": true,
          });
          // The last cancelled attempt's failure shows until this stream's first bytes are read.
          const mark = await markAttempt(dst);
          const r = await src.api<Json>("POST", "/migrations", { uri: proxy.uri });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          const id = r.body["x-id"];
          await src.waitStatus(/^pre-switchover$/, 30_000);
          // The destination's replies (its SHUT) are held back: the whole stream reaches it
          // and it runs the guest, while the source waits in `device`.
          proxy.pause("down");
          const c = await src.api("POST", "/migrations/current/continue", {
            state: "pre-switchover",
          });
          assert.equal(c.status, 202);
          await src.waitStatus(/^device$/, 10_000);
          // The destination has everything: the source crossed its point of no return.
          const arrived = await waitNextEnd(dst, mark);
          assert.equal(arrived.status, "completed", JSON.stringify(arrived));
          const cancel = await src.api<Json>("POST", "/migrations/current/cancel");
          assert.equal(cancel.status, 409, JSON.stringify(cancel.body));
          assert.equal((await src.api<Json>("GET", "/migrations/current")).body.status, "device");
          proxy.resume("down");
          assert.equal(
            (await src.waitStatus(/^(completed|failed|cancelled)$/)).status,
            "completed",
          );
          assert.equal((await dst.waitStatus(/^(completed|failed)$/)).status, "completed");
          assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
          assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
          assert.deepEqual((await dst.api<Json>("GET", "/machine/digest")).body.blocks, before);
          await ev.waitFor((e) =>
            e.event === "MIGRATION" && (e.data as Json).id === id &&
            (e.data as Json).status === "completed"
          );
          assert.deepEqual(sequence(ev, id), [
            "setup",
            "active",
            "pre-switchover",
            "device",
            "completed",
          ]);
        },
      );
    } finally {
      await ev.close();
      await proxy.close();
    }
  });
});
