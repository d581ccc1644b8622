/**
 * Issue 6, broken links with real agent processes and a cutting TCP proxy: a link cut in
 * the middle of precopy, and a peer that stops reading. Afterwards the source's guest runs
 * with its memory intact, the destination's guest never ran, and a second migration
 * completes. The cases are steps of one source (`cont` after each completed migration).
 */
import assert from "node:assert/strict";
import { type Json } from "../harness/agent_process.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  FAULT_RAM,
  incomingPort,
  SLOW,
  startLocalFaultAgents,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

Deno.test("faults: broken links (a cut, a peer that stops reading), each on a destination of its own", async (t) => {
  await withAgents(async (track) => {
    const [src, dst1, dst2] = await startLocalFaultAgents(
      track,
      "source",
      "destination",
      "destination",
    );
    await t.step(
      "a link cut mid-precopy fails both sides; the source runs on; a retry completes",
      async () => {
        const dst = dst1;
        const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port: incomingPort(dst) });
        try {
          const before = await digest(src);
          const attempt = await waitingAttempt(dst);
          await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
          // The proxy cuts at 2 MiB by itself, wherever the test is then.
          const cut = proxy.cutAt(2 << 20);
          assert.equal((await src.api("POST", "/migrations", { uri: proxy.uri })).status, 202);
          await cut;
          const info = await expectSourceIntact(src, before, "failed");
          assert.equal(proxy.bytesUp, 2 << 20, "the cut landed mid-flight, at 2 MiB");
          assert.match(info["error-desc"], /pipe|reset|closed|shut/i);
          await expectDestinationFailed(dst, attempt);
          await expectMigrationCompletes(src, dst, proxy.uri);
        } finally {
          await proxy.close();
        }
        await dst1.stop();
      },
    );

    await t.step(
      "a peer that stops reading stalls the source until cancel unblocks it",
      async () => {
        // The source completed its last migration: cont runs its guest again.
        assert.equal((await src.api("POST", "/machine/cont")).status, 202);
        const dst = dst2;
        const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port: incomingPort(dst) });
        try {
          const before = await digest(src);
          const attempt = await waitingAttempt(dst);
          await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
          // The proxy stops reading at 2 MiB by itself, wherever the test is then.
          const paused = proxy.pauseAt(2 << 20);
          await src.api("POST", "/migrations", { uri: proxy.uri });
          await paused;
          // The socket buffers fill, then the source's writes block: nothing more is sent. Time
          // must pass to show that: three looks 300 ms apart (three 100 ms windows of the rate
          // limiter each) that see the same count.
          let last = -1;
          for (let still = 0; still < 3;) {
            await new Promise((r) => setTimeout(r, 300));
            const info = (await src.api<Json>("GET", "/migrations/current")).body;
            assert.equal(info.status, "active", JSON.stringify(info));
            still = info.ram.transferred === last ? still + 1 : 0;
            last = info.ram.transferred;
          }
          assert.ok(last < FAULT_RAM, `stalled mid-flight at ${last} bytes`);
          // migrate_fd_cancel shuts the channel down: the blocked write returns, and the source
          // gets to cancelled while the proxy still holds the link.
          assert.equal((await src.api("POST", "/migrations/current/cancel")).status, 202);
          await expectSourceIntact(src, before, "cancelled");
          assert.ok(proxy.paused);
          // The destination sees the stream end once the link carries again.
          proxy.resume();
          await expectDestinationFailed(dst, attempt);
          await expectMigrationCompletes(src, dst, proxy.uri);
        } finally {
          await proxy.close();
        }
      },
    );
  });
});
