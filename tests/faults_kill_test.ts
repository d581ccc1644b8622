/**
 * Issue 6, crashes with real agent processes: the destination process killed in the
 * middle of precopy (the source fails and runs on with its memory intact), and the source
 * process killed (the destination fails and never runs the guest). A second migration then
 * completes in each case.
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
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

Deno.test("faults: the destination process killed mid-precopy fails the source, which runs on", async () => {
  await withAgents(async (track) => {
    // dst2: a new destination on the same host for the second attempt.
    const [dst, src, dst2] = await startFaultAgents(track, "destination", "source", "destination");
    const before = await digest(src);
    await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    await sentAtLeast(src, 1 << 20);
    dst.kill("SIGKILL");
    assert.equal((await dst.exited).signal, "SIGKILL");
    const info = await expectSourceIntact(src, before, "failed");
    assert.match(info["error-desc"], /pipe|reset|closed|shut/i);
    await expectMigrationCompletes(src, dst2);
  });
});

Deno.test("faults: the source process killed mid-precopy fails the destination, which never runs the guest", async () => {
  await withAgents(async (track) => {
    // src2: a new source whose migration the destination takes after the failed one.
    const [dst, src, src2] = await startFaultAgents(track, "destination", "source", "source");
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
  });
});
