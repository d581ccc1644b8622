/** The transition table and compare-and-set. */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  isSetupOrActive,
  MIGRATION_STATUSES,
  type MigrationStatus,
  StateMachine,
  TRANSITIONS,
} from "../../domain/state_machine.ts";

Deno.test("state machine: compare-and-set emits each change once, in order", () => {
  const seen: string[] = [];
  const sm = new StateMachine("source", (from, to) => seen.push(`${from}>${to}`));
  assert.equal(sm.transition("none", "setup"), true);
  assert.equal(sm.transition("none", "setup"), false); // already moved: CAS fails, no event
  assert.equal(sm.transition("setup", "active"), true);
  assert.equal(sm.transition("setup", "failed"), false);
  assert.equal(sm.transition("active", "completed"), true);
  assert.deepEqual(seen, ["none>setup", "setup>active", "active>completed"]);
});

Deno.test("state machine: transitions outside the table throw", () => {
  const sm = new StateMachine("destination", () => {});
  assert.throws(() => sm.transition("none", "completed"), /illegal destination transition/);
  assert.throws(() => sm.transition("none", "cancelling"), /illegal/);
});

Deno.test("state machine: random walks only ever follow the table (property)", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  fc.assert(
    fc.property(
      fc.constantFrom("source", "destination"),
      fc.array(fc.nat(12), { maxLength: 40 }),
      (side, picks) => {
        const events: [MigrationStatus, MigrationStatus][] = [];
        const sm = new StateMachine(
          side as "source" | "destination",
          (f, t) => events.push([f, t]),
        );
        for (const k of picks) {
          const next = TRANSITIONS[sm.side][sm.status] ?? [];
          if (next.length === 0) break;
          const to = next[k % next.length];
          assert.equal(sm.transition(sm.status, to), true);
        }
        let at: MigrationStatus = "none";
        for (const [f, t] of events) {
          assert.equal(f, at);
          assert.ok(TRANSITIONS[sm.side][f]!.includes(t));
          at = t;
        }
        assert.equal(sm.status, at);
      },
    ),
    { seed },
  );
});

Deno.test("state machine: terminal states have no way out; the seed's active set", () => {
  for (const side of ["source", "destination"] as const) {
    for (const s of ["completed", "failed", "cancelled"] as const) {
      assert.equal(TRANSITIONS[side][s], undefined);
    }
  }
  const active = MIGRATION_STATUSES.filter(isSetupOrActive);
  assert.deepEqual(active.sort(), [
    "active",
    "device",
    "postcopy-active",
    "postcopy-paused",
    "postcopy-recover",
    "pre-switchover",
    "setup",
  ]);
});
