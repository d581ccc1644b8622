/**
 * Issue 20, item 5: errors that explain, on the side the user is looking at. A destination
 * that refuses a stream says why on the source (its reason travels back over the socket,
 * with or without a return path); a cancel on the source shows as a cancel on the
 * destination, not as a truncated stream. Real agents over loopback TCP: one source, whose
 * refused and cancelled migrations leave it running for the next step.
 */
import assert from "node:assert/strict";
import { type Json, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  FAULT_RAM,
  sentAtLeast,
  SLOW,
  waitingAttempt,
} from "./helpers/fault_kit.ts";

/** The source's RAM (FAULT_RAM, bytes); the destination has twice as much. */
const SOURCE_RAM = FAULT_RAM;

const MISMATCH = new RegExp(
  `^destination refused: Configuration mismatch: RAM block 'pc\\.ram' is ${SOURCE_RAM} bytes ` +
    `on the source, ${2 * SOURCE_RAM} here$`,
);

Deno.test("errors explain on the side the user looks at: a size mismatch, a cancel", async (t) => {
  await withAgents(async (track) => {
    // One source; two destinations with twice its RAM (one per return-path setting) and one
    // of its size for the cancel. A refused or cancelled source runs on for the next step.
    const bigger = ["--ram", String(2 * SOURCE_RAM), "--incoming", "tcp:127.0.0.1:0"];
    const [src, big1, big2, dst] = await startLocalAgents(
      track,
      ["--ram", String(SOURCE_RAM), "--fill", "random", "--workload", "idle"],
      bigger,
      bigger,
      ["--ram", String(SOURCE_RAM), "--incoming", "tcp:127.0.0.1:0"],
    );
    for (const [returnPath, big] of [[false, big1], [true, big2]] as const) {
      await t.step(
        `a RAM-size mismatch is explained in the source's error-desc (return-path ${returnPath})`,
        async () => {
          const id = await waitingAttempt(big);
          const before = await digest(src);
          await src.api("PATCH", "/capabilities", { "return-path": returnPath });
          const r = await src.api<Json>("POST", "/migrations", { uri: big.incomingUri });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          const info = await expectSourceIntact(src, before, "failed");
          assert.match(info["error-desc"], MISMATCH);
          // The destination keeps its own words (the seed's texts, unchanged).
          const d = await expectDestinationFailed(big, id);
          assert.match(d["error-desc"], /^load of migration failed: Configuration mismatch: /);
          await big.stop();
        },
      );
    }

    await t.step("a cancel on the source shows as a cancel on the destination", async () => {
      await src.api("PATCH", "/capabilities", { "return-path": false });
      const id = await waitingAttempt(dst);
      const before = await digest(src);
      await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
      const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      await sentAtLeast(src, 2 << 20);
      assert.equal((await src.api("POST", "/migrations/current/cancel")).status, 202);
      await expectSourceIntact(src, before, "cancelled");
      const d = await expectDestinationFailed(dst, id);
      assert.equal(d["error-desc"], "load of migration failed: migration cancelled by the source");
      // The destination takes the next migration.
      await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
      await expectMigrationCompletes(src, dst);
    });
  });
});
