/**
 * The data path's warm-up (domain/engine/warm_up.ts): a scratch guest moved to itself over
 * loopback TCP through the engine's sender and loader arrives whole, every pass, and leaves no
 * socket or listener behind (the test's resource sanitizer would fail it).
 */
import assert from "node:assert/strict";
import { allocateGuest } from "../../adapters/memory/guest_ram.ts";
import {
  IdleWarmUp,
  scratchGuest,
  WARM_UP_BYTES,
  WARM_UP_SPAN,
  warmUpDataPath,
} from "../../domain/engine/warm_up.ts";

Deno.test("warm-up: the scratch guest arrives whole through the real sender and loader, each pass", async () => {
  const passes = 3;
  const r = await warmUpDataPath(undefined, passes);
  assert.equal(r.intact, true, "the receiving scratch guest holds what was sent");
  // Each pass sends the guest's non-zero pages (29/32 of it) whole, then the few pages a
  // dirty-log sync found again, plus headers and zero runs.
  const pagesPerPass = (WARM_UP_BYTES * 29) / 32;
  assert.ok(r.bytes >= passes * pagesPerPass, `${r.bytes} bytes for ${passes} passes`);
  assert.ok(r.bytes < passes * WARM_UP_BYTES * 1.1, `${r.bytes} bytes: more than the pages`);
});

Deno.test("warm-up: scratch guests have the agent's guest's shape, never its memory", async () => {
  const like = allocateGuest([{ name: "pc.ram", size: 4 << 20 }]);
  // What an agent adds to its guest after allocating it (adapters/memory/machine.ts).
  Object.assign(like, { drives: [], lateBlockActivate: new Int32Array(new SharedArrayBuffer(4)) });
  const ram = new Uint8Array(like.ram[0]);
  const scratch = scratchGuest(true, like);
  assert.deepEqual(Object.keys(scratch), Object.keys(like), "the same keys, in the same order");
  assert.notEqual(scratch.ram[0], like.ram[0]);
  assert.notEqual(scratch.dirty, like.dirty);
  assert.equal(scratch.ram[0].byteLength, WARM_UP_SPAN);
  const r = await warmUpDataPath(like, 2);
  assert.equal(r.intact, true);
  assert.ok(ram.every((b) => b === 0), "the agent's guest RAM is never written");
});

Deno.test("warm-up: once told to stop (a migration came), it ends after the pass under way", async () => {
  let asked = 0;
  const r = await warmUpDataPath(undefined, 1000, () => asked++ > 0);
  assert.equal(r.intact, true);
  assert.equal(asked, 2, "asked before each pass: one ran, the second was not started");
  const pass = (WARM_UP_BYTES * 29) / 32;
  assert.ok(r.bytes >= pass && r.bytes < 2 * pass, `${r.bytes} bytes: one pass`);
});

Deno.test("warm-up: a Worker's idle warm-up is what a run that comes awaits, and leaves nothing open", async () => {
  for (const yieldToRun of [true, false]) {
    const w = new IdleWarmUp();
    w.start(undefined, yieldToRun);
    await w.runCame(); // the resource sanitizer fails the test if a socket stayed open
  }
  assert.equal(await new IdleWarmUp().runCame(), undefined, "never started: nothing to wait for");
});
