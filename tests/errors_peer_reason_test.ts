/**
 * Issue 20, item 5: errors that explain, on the side the user is looking at. A destination
 * that refuses a stream says why on the source (its reason travels back over the socket,
 * with or without a return path); a cancel on the source shows as a cancel on the
 * destination, not as a truncated stream. Real agents over loopback TCP.
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json, startAgent, withAgents } from "./helpers/agent_process.ts";
import {
  digest,
  expectDestinationFailed,
  expectMigrationCompletes,
  expectSourceIntact,
  FAULT_RAM,
  sentAtLeast,
  SLOW,
  startDestination,
  startSource,
  waitingAttempt,
} from "./helpers/fault_kit.ts";

/** The source's RAM (FAULT_RAM, bytes); the destination has twice as much. */
const SOURCE_RAM = FAULT_RAM;

const MISMATCH = new RegExp(
  `^destination refused: Configuration mismatch: RAM block 'pc\\.ram' is ${SOURCE_RAM} bytes ` +
    `on the source, ${2 * SOURCE_RAM} here$`,
);

/** A destination whose RAM is twice the source's (FAULT_RAM). */
function startBiggerDestination(): Promise<AgentProcess> {
  return startAgent(["--ram", String(2 * SOURCE_RAM), "--incoming", "tcp:127.0.0.1:0"]);
}

for (const returnPath of [false, true]) {
  Deno.test(`a RAM-size mismatch is explained in the source's error-desc (return-path ${returnPath})`, async () => {
    await withAgents(async (track) => {
      const dst = track(await startBiggerDestination());
      const src = track(await startSource());
      const id = await waitingAttempt(dst);
      const before = await digest(src);
      await src.api("PATCH", "/capabilities", { "return-path": returnPath });
      const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const info = await expectSourceIntact(src, before, "failed");
      assert.match(info["error-desc"], MISMATCH);
      // The destination keeps its own words (the seed's texts, unchanged).
      const d = await expectDestinationFailed(dst, id);
      assert.match(d["error-desc"], /^load of migration failed: Configuration mismatch: /);
    });
  });
}

Deno.test("a cancel on the source shows as a cancel on the destination", async () => {
  await withAgents(async (track) => {
    const dst = track(await startDestination());
    const src = track(await startSource());
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
