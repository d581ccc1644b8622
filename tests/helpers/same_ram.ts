/**
 * Test helper: after a completed migration, the destination's RAM is the source's.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent } from "../../harness/agent_process.ts";

/**
 * Compares the two agents' RAM digests block by block. With `stopDestination` the
 * destination's guest is stopped first, so that what it wrote since it arrived cannot differ
 * from the stopped source's (test agents also keep the digest as RAM arrived).
 */
export async function assertSameRam(
  src: TestAgent,
  dst: TestAgent,
  stopDestination = true,
): Promise<void> {
  if (stopDestination) await dst.api("POST", "/machine/stop");
  assert.deepEqual(
    (await src.api<{ blocks: unknown }>("GET", "/machine/digest")).body.blocks,
    (await dst.api<{ blocks: unknown }>("GET", "/machine/digest")).body.blocks,
    "the destination's RAM is the source's",
  );
}

/**
 * Waits for the migration's end on both sides: both `completed` (the source's final info is
 * in the failure message otherwise), then the destination's RAM is the source's.
 */
export async function completesWhole(src: TestAgent, dst: TestAgent): Promise<Json> {
  const info = await src.waitStatus(/completed|failed/);
  assert.equal(info.status, "completed", JSON.stringify(info));
  assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
  await assertSameRam(src, dst);
  return info;
}
