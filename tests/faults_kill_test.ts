/**
 * Issue 6, crashes with real agent processes: the destination process killed in the
 * middle of precopy (the source fails and runs on with its memory intact), and the source
 * process killed (the destination fails and never runs the guest). A second migration then
 * completes in each case. The steps share agents: the second source of the first step,
 * its migration completed, runs on (`cont`) as the source of the second.
 */
import assert from "node:assert/strict";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  sentAtLeast,
  SLOW,
  startFaultAgents,
  startLocalFaultAgents,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

Deno.test("faults: a killed peer process fails the other side; a second migration completes", async (t) => {
  await withAgents(async (track) => {
    // src dies in the first step, into dst; src2 then migrates into dst, and from there on
    // into dst2 (a cont after completing), whose first destination, dst3, is killed.
    // The two killed (src, dst3) are processes; the others live in this one.
    const [[src, dst3], [dst, src2, dst2]] = await Promise.all([
      startFaultAgents(track, "source", "destination"),
      startLocalFaultAgents(track, "destination", "source", "destination"),
    ]);

    await t.step(
      "the source process killed mid-precopy fails the destination, which never runs the guest",
      async () => {
        const attempt = await waitingAttempt(dst);
        await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
        await src.api("POST", "/migrations", { uri: dst.incomingUri });
        await dst.waitStatus(/^active$/, 15_000);
        await sentAtLeast(src, 1 << 20);
        src.kill("SIGKILL");
        assert.equal((await src.exited).signal, "SIGKILL");
        const info = await expectDestinationFailed(dst, attempt);
        assert.match(info["error-desc"], /truncated|reset|closed/);
        await expectMigrationCompletes(src2, dst);
        await dst.stop();
      },
    );

    await t.step(
      "the destination process killed mid-precopy fails the source, which runs on",
      async () => {
        assert.equal((await src2.api("POST", "/machine/cont")).status, 202);
        const before = await digest(src2);
        await src2.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
        await src2.api("POST", "/migrations", { uri: dst3.incomingUri });
        await sentAtLeast(src2, 1 << 20);
        dst3.kill("SIGKILL");
        assert.equal((await dst3.exited).signal, "SIGKILL");
        const info = await expectSourceIntact(src2, before, "failed");
        assert.match(info["error-desc"], /pipe|reset|closed|shut/i);
        await expectMigrationCompletes(src2, dst2);
      },
    );
  });
});
