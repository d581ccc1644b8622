/**
 * The data path's warm-up (domain/engine/warm_up.ts): a scratch guest moved to itself over
 * loopback TCP through the engine's sender and loader arrives whole, every pass, and leaves no
 * socket or listener behind (the test's resource sanitizer would fail it).
 */
import assert from "node:assert/strict";
import { WARM_UP_BYTES, warmUpDataPath } from "../../domain/engine/warm_up.ts";

Deno.test("warm-up: the scratch guest arrives whole through the real sender and loader, each pass", async () => {
  const passes = 3;
  const r = await warmUpDataPath(passes);
  assert.equal(r.intact, true, "the receiving scratch guest holds what was sent");
  // Each pass sends the guest's non-zero pages (7/8 of it) whole, plus headers and zero runs.
  const pagesPerPass = (WARM_UP_BYTES * 7) / 8;
  assert.ok(r.bytes >= passes * pagesPerPass, `${r.bytes} bytes for ${passes} passes`);
  assert.ok(r.bytes < passes * WARM_UP_BYTES + 64 * 1024, `${r.bytes} bytes: more than the pages`);
});
