import assert from "node:assert/strict";
import { Signal } from "../../domain/engine/signal.ts";

Deno.test("signal: a wait that times out leaves nothing behind; notify wakes the waits of now", async () => {
  const s = new Signal();
  // A loop that waits with a timeout while nothing notifies it (a paused postcopy, a held COLO).
  for (let i = 0; i < 50; i++) await s.wait(0);
  assert.equal(s.waiting, 0, "timed-out waits must not stay until a notify");
  let woken = 0;
  const forever = s.wait().then(() => woken++);
  const long = s.wait(60_000).then(() => woken++);
  assert.equal(s.waiting, 2);
  s.notify();
  await Promise.all([forever, long]);
  assert.equal(woken, 2);
  assert.equal(s.waiting, 0);
  // A wait begun after the notify waits for the next one.
  let late = false;
  const next = s.wait().then(() => (late = true));
  await Promise.resolve();
  assert.equal(late, false);
  s.notify();
  await next;
  assert.equal(late, true);
});
