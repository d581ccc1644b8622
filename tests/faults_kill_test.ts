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
  SLOW,
  startDestination,
  startSource,
  waitingAttempt,
  withAgents,
} from "./helpers/fault_kit.ts";

Deno.test("faults: the destination process killed mid-precopy fails the source, which runs on", async () => {
  await withAgents(async (track) => {
    const dst = track(await startDestination());
    const src = track(await startSource());
    const before = await digest(src);
    await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    await src.waitStatus(/^active$/, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    dst.kill("SIGKILL");
    assert.equal((await dst.exited).signal, "SIGKILL");
    const info = await expectSourceIntact(src, before, "failed");
    assert.match(info["error-desc"], /pipe|reset|closed|shut/i);
    // A new destination on the same host: the second attempt completes.
    const dst2 = track(await startDestination());
    await expectMigrationCompletes(src, dst2);
  });
});

Deno.test("faults: the source process killed mid-precopy fails the destination, which never runs the guest", async () => {
  await withAgents(async (track) => {
    const dst = track(await startDestination());
    const src = track(await startSource());
    const attempt = await waitingAttempt(dst);
    await src.api("PATCH", "/parameters", { "max-bandwidth": SLOW });
    await src.api("POST", "/migrations", { uri: dst.incomingUri });
    await dst.waitStatus(/^active$/, 15_000);
    await new Promise((r) => setTimeout(r, 500));
    src.kill("SIGKILL");
    assert.equal((await src.exited).signal, "SIGKILL");
    const info = await expectDestinationFailed(dst, attempt);
    assert.match(info["error-desc"], /truncated|reset|closed/);
    // The destination listens again; a new source's migration completes.
    const src2 = track(await startSource());
    await expectMigrationCompletes(src2, dst);
  });
});
