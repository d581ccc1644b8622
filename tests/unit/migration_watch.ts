/**
 * MigrationWatch on its own (a short progress period instead of 250 ms): progress events
 * while a migration runs and one when it ends, then the timer stops; the convergence verdict
 * published only when it changes; an `x-policy` timeout carries out its actions in order,
 * each recorded in the migration's history and published.
 */
import assert from "node:assert/strict";
import { EventBus, type FerryEvent } from "../../domain/event_bus.ts";
import { Migration } from "../../domain/migration.ts";
import { MigrationWatch } from "../../domain/migration_watch.ts";
import type { Outgoing } from "../../domain/outgoing.ts";
import { PolicyTracker } from "../../domain/policy.ts";
import { STAT } from "../../domain/engine/stats.ts";
import { waitFor } from "../../harness/wait.ts";

const PERIOD = 20;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Every event published on `bus` from now on, in order. */
function record(bus: EventBus): FerryEvent[] {
  const seen: FerryEvent[] = [];
  const sub = bus.subscribe();
  (async () => {
    for (;;) {
      const e = await sub.next();
      if (e === null) return;
      seen.push(e);
    }
  })();
  return seen;
}

Deno.test("watch: progress while a migration runs, one more when it ends, then no timer", async () => {
  const bus = new EventBus();
  const seen = record(bus);
  let incoming: Migration | null = null;
  const watch = new MigrationWatch(bus, { outgoing: () => null, incoming: () => incoming }, PERIOD);
  try {
    const m = new Migration(
      "destination",
      "tcp:127.0.0.1:1",
      (m, _from, to) => watch.changed(m, to),
    );
    incoming = m;
    m.machine.transition("none", "setup");
    m.machine.transition("setup", "active");
    const progress = () => seen.filter((e) => e.event === "progress");
    await waitFor("three progress events", () => progress().length >= 3);
    m.machine.transition("active", "completed");
    await waitFor("a progress event for the end", () => {
      const last = progress().at(-1)!.data as { status: string };
      return last.status === "completed";
    });
    const after = progress().length;
    // A running migration the watch was not told about: a timer still going would report it.
    const unannounced = new Migration("destination", "tcp:127.0.0.1:1", () => {});
    unannounced.machine.transition("none", "setup");
    unannounced.machine.transition("setup", "active");
    incoming = unannounced;
    await sleep(PERIOD * 10); // ten periods pass, and no progress event may come in them
    assert.equal(progress().length, after, "the timer stopped");
  } finally {
    watch.close();
  }
});

Deno.test("watch: verdict changes are published once; the policy's actions run in order", async () => {
  const bus = new EventBus();
  const seen = record(bus);
  const m = new Migration("source", "tcp:127.0.0.1:1", () => {});
  m.caps = { "postcopy-ram": false };
  m.params = { "downtime-limit": 300, "max-bandwidth": 0 };
  m.machine.transition("none", "setup");
  m.machine.transition("setup", "active");
  m.stats[STAT.remaining] = 1 << 30; // no progress at all
  const done: string[] = [];
  const outgoing = {
    migration: m,
    cancel: () => done.push("cancel"),
    command: (c: { t: string }) => done.push(c.t),
  } as unknown as Outgoing;
  const watch = new MigrationWatch(bus, { outgoing: () => outgoing, incoming: () => null }, PERIOD);
  watch.policy = new PolicyTracker(
    { "progress-timeout": 0.05, actions: ["auto-converge", "postcopy", "cancel"] },
    1 << 30,
    Date.now(),
  );
  try {
    watch.changed(m, "active");
    await waitFor("three policy firings", () => m.history.filter((h) => h.note).length >= 3);
    // The last action fires again at every timeout: counted on its line, not a line each.
    await waitFor(
      "the last action's note to repeat twice",
      () => (m.history.at(-1)?.repeats ?? 0) >= 2,
    );
  } finally {
    watch.close();
  }
  assert.deepEqual(
    seen.filter((e) => e.event === "MIGRATION_CONVERGENCE").map((e) =>
      (e.data as { verdict: string }).verdict
    ),
    ["estimating"],
  );
  // postcopy-ram is off: that step is noted as skipped; cancel then repeats (the last action).
  assert.deepEqual(done.slice(0, 2), ["auto-converge", "cancel"]);
  const noted = m.history.filter((h) => h.note);
  const notes = noted.map((h) => h.note!);
  assert.equal(notes.length, 3, JSON.stringify(m.history));
  assert.match(notes[0], /progress-timeout fired \(step 1\): auto-converge/);
  assert.match(notes[1], /step 2\): postcopy skipped: the postcopy-ram capability is off/);
  assert.match(notes[2], /step 3\): cancel/);
  assert.ok(noted[2].last! >= noted[2].time, JSON.stringify(noted[2]));
  const policy = seen.filter((e) => e.event === "MIGRATION_POLICY");
  // Every firing was published; the history holds each once, with its repeats.
  assert.equal(policy.length, noted.reduce((n, h) => n + 1 + (h.repeats ?? 0), 0));
  assert.deepEqual(policy[0].data, {
    id: m.id,
    trigger: "progress-timeout",
    action: "auto-converge",
    step: 1,
    note: notes[0],
  });
});
