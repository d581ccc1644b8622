/**
 * pause-before-switchover end to end between two real agents: the precopy and postcopy status
 * sequences as QEMU's (pre-switchover, then device or postcopy-active, after migrate-continue),
 * the seed's refusal of a continue from the wrong state, and a cancel from pre-switchover.
 */
import assert from "node:assert/strict";
import { withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { statuses, untilStatus as until } from "./helpers/postcopy_pair.ts";
import { recordEvents } from "./helpers/sse.ts";
import { assertSameRam } from "./helpers/same_ram.ts";

// One source for all three cases. A cancelled attempt leaves it running and the destination
// waiting for the next stream; after the completed precopy it runs again (`cont`, as QEMU's)
// and migrates in postcopy to a second destination.
Deno.test("pause-before-switchover", async (t) => {
  await withAgents(async (track) => {
    const [src, dst, dst2] = await startLocalAgents(
      track,
      ["--ram", "8M", "--fill", "random", "--workload", "increment", "-S"],
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
    );
    await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
    await src.api("PATCH", "/capabilities", { "pause-before-switchover": true });
    await src.api("POST", "/machine/cont");
    await t.step("in precopy: cancel from pre-switchover leaves the source running", async () => {
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      await src.waitStatus(/pre-switchover/);
      await src.api("POST", "/migrations/current/cancel");
      assert.equal((await src.waitStatus(/cancelled|failed|completed/)).status, "cancelled");
      assert.equal((await src.api("GET", "/machine")).body.runstate, "running");
      assert.equal((await dst.api("GET", "/machine")).body.runstate, "inmigrate");
    });
    await t.step(
      "in precopy: setup, active, pre-switchover, device, completed as QEMU's",
      async () => {
        await dst.waitStatus(/^(setup|failed)$/, 30_000); // waiting for the next stream
        const ev = await recordEvents(src.base);
        try {
          await src.api("POST", "/migrations", { uri: dst.incomingUri });
          await src.waitStatus(/pre-switchover/);
          const wrong = await src.api("POST", "/migrations/current/continue", { state: "active" });
          assert.equal(wrong.status, 409);
          assert.equal(wrong.body.detail, "Migration not in expected state: pre-switchover");
          assert.equal((await src.api("GET", "/machine")).body.runstate, "finish-migrate");
          assert.equal(
            (await src.api("POST", "/migrations/current/continue", { state: "pre-switchover" }))
              .status,
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
          await dst.waitStatus(/^completed$/);
          await assertSameRam(src, dst);
        } finally {
          await ev.close();
        }
      },
    );
    await t.step(
      "in postcopy: setup, active, pre-switchover, postcopy-active, completed",
      async () => {
        // The guest rewrites its 8 MiB far faster than a 32 MiB/s link with a 20 ms downtime
        // limit can carry: precopy alone does not converge (as postcopy_pair's hardPair).
        assert.equal((await src.api("POST", "/machine/cont")).status, 202);
        await src.api("PATCH", "/parameters", {
          "max-bandwidth": 32 << 20,
          "downtime-limit": 20,
          "max-postcopy-bandwidth": 32 << 20,
        });
        assert.equal(
          (await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status,
          200,
        );
        const ev = await recordEvents(src.base);
        try {
          await src.api("POST", "/migrations", { uri: dst2.incomingUri });
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
      },
    );
  });
});
