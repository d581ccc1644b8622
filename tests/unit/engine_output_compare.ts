/**
 * Issue 21 item 3, the primary's output compare without processes (domain/output_compare.ts):
 * equal records are released in order, a mismatch / a timeout / a full queue makes a
 * checkpoint due once, and the checkpoint releases what was held.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  COMPARE_TIMEOUT_MS,
  type CompareTrigger,
  OutputCompare,
} from "../../domain/output_compare.ts";

function harness(timeoutMs = COMPARE_TIMEOUT_MS, capacity = 1024) {
  const released: number[] = [];
  const triggers: CompareTrigger[] = [];
  const c = new OutputCompare<number>(
    {
      release: (r) => released.push(r),
      trigger: (why) => triggers.push(why),
    },
    timeoutMs,
    capacity,
  );
  return { c, released, triggers };
}

Deno.test("output compare: equal records are released in seq order, whichever side comes first", () => {
  const { c, released, triggers } = harness();
  c.primary(1, "a", 1, 0);
  c.primary(2, "b", 2, 0);
  c.primary(3, "c", 3, 0);
  assert.deepEqual(released, [], "held until the secondary's come");
  c.secondary(2, "b");
  assert.deepEqual(released, [], "2 waits behind 1");
  c.secondary(1, "a");
  assert.deepEqual(released, [1, 2]);
  c.secondary(4, "d"); // the secondary ahead
  c.secondary(3, "c");
  c.primary(4, "d", 4, 10);
  assert.deepEqual(released, [1, 2, 3, 4]);
  assert.deepEqual(triggers, []);
  assert.deepEqual(c.counters, { compared: 4, mismatched: 0, held: 0 });
  c.secondary(2, "x"); // already settled: ignored
  assert.deepEqual(c.counters, { compared: 4, mismatched: 0, held: 0 });
});

Deno.test("output compare: a mismatch makes a checkpoint due once; it releases what was held", () => {
  const { c, released, triggers } = harness();
  c.primary(1, "a", 1, 0);
  c.primary(2, "b", 2, 0);
  c.primary(3, "c", 3, 0);
  c.secondary(1, "a");
  c.secondary(2, "B");
  assert.deepEqual(released, [1]);
  assert.deepEqual(triggers, ["mismatch"]);
  c.secondary(3, "C");
  assert.deepEqual(triggers, ["mismatch"], "one checkpoint at a time");
  assert.equal(c.due, true);
  assert.deepEqual(c.counters, { compared: 3, mismatched: 2, held: 2 });
  c.primary(4, "d", 4, 0); // written before the checkpoint stopped the guest
  c.checkpointed(5);
  assert.deepEqual(released, [1, 2, 3, 4]);
  assert.equal(c.due, false);
  c.primary(4, "late", 40, 0); // a record from before the checkpoint that came late
  assert.deepEqual(released, [1, 2, 3, 4, 40]);
  c.secondary(4, "old"); // the secondary's guest before the checkpoint: ignored
  c.primary(5, "e", 5, 0);
  c.secondary(5, "e");
  assert.deepEqual(released, [1, 2, 3, 4, 40, 5]);
});

Deno.test("output compare: the secondary's records before a checkpoint are forgotten", () => {
  const { c, released, triggers } = harness();
  c.secondary(7, "stale"); // the secondary ran ahead, then a checkpoint replaced its guest
  c.checkpointed(7);
  c.primary(7, "fresh", 7, 0);
  assert.deepEqual(released, []);
  c.secondary(7, "fresh");
  assert.deepEqual(released, [7]);
  assert.deepEqual(triggers, []);
});

Deno.test("output compare: a record waiting longer than the compare timeout triggers", () => {
  const { c, released, triggers } = harness(3000);
  c.primary(1, "a", 1, 1000);
  c.tick(4000);
  assert.deepEqual(triggers, [], "exactly the timeout is not late");
  c.primary(2, "b", 2, 4000);
  c.tick(4001);
  assert.deepEqual(triggers, ["timeout"]);
  c.tick(9000);
  assert.deepEqual(triggers, ["timeout"], "once until the checkpoint");
  c.checkpointed(3);
  assert.deepEqual(released, [1, 2]);
  c.tick(20_000);
  assert.deepEqual(triggers, ["timeout"], "nothing held, nothing late");
});

Deno.test("output compare: a full queue triggers (the primary's or the secondary's)", () => {
  const p = harness(3000, 4);
  for (let s = 1; s <= 4; s++) p.c.primary(s, "x", s, 0);
  assert.deepEqual(p.triggers, []);
  p.c.primary(5, "x", 5, 0);
  assert.deepEqual(p.triggers, ["full"]);
  p.c.checkpointed(6);
  assert.deepEqual(p.released, [1, 2, 3, 4, 5]);
  const s = harness(3000, 2);
  s.c.secondary(1, "x");
  s.c.secondary(2, "x");
  assert.deepEqual(s.triggers, []);
  s.c.secondary(3, "x");
  assert.deepEqual(s.triggers, ["full"]);
});

Deno.test("output compare: drain hands back the held records, oldest first", () => {
  const { c, released } = harness();
  c.primary(1, "a", 1, 0);
  c.primary(2, "b", 2, 0);
  assert.deepEqual(c.drain(), [1, 2]);
  assert.deepEqual(released, []);
  assert.equal(c.counters.held, 0);
});

Deno.test("output compare: equal streams in any interleaving release all, in order (property)", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  fc.assert(
    fc.property(fc.array(fc.boolean(), { minLength: 1, maxLength: 60 }), (order) => {
      const { c, released, triggers } = harness();
      let p = 0, s = 0;
      const n = order.length;
      for (const primaryFirst of order) {
        if (primaryFirst && p < n) p++, c.primary(p, `d${p}`, p, 0);
        else if (s < n) s++, c.secondary(s, `d${s}`);
      }
      while (p < n) p++, c.primary(p, `d${p}`, p, 0);
      while (s < n) s++, c.secondary(s, `d${s}`);
      assert.deepEqual(released, Array.from({ length: n }, (_, i) => i + 1));
      assert.deepEqual(triggers, []);
    }),
    { seed },
  );
});

Deno.test("output compare: epochs — the secondary's records of a replaced guest are ignored", () => {
  const { c, released, triggers } = harness();
  c.primary(1, "a", 1, 0);
  // The secondary's record 2 of the next guest comes before the checkpoint's report.
  c.secondary(2, "b", 1);
  c.secondary(5, "stale", 0); // ahead, from the guest before the checkpoint
  c.checkpointed(2, 1);
  assert.deepEqual(released, [1]);
  c.secondary(3, "late-stale", 0);
  c.primary(2, "b", 2, 0);
  c.primary(3, "c", 3, 0);
  c.secondary(3, "c", 1);
  assert.deepEqual(released, [1, 2, 3]);
  c.primary(5, "e", 5, 0);
  assert.deepEqual(released, [1, 2, 3], "the stale 5 was forgotten, the fresh one not come");
  assert.deepEqual(triggers, []);
  c.checkpointed(null, 2); // nextSeq unknown: everything held is released
  assert.deepEqual(released, [1, 2, 3, 5]);
});
