/**
 * A source Worker kept warm between migrations (domain/warm_workers.ts, worker_host.ts): the
 * second migration gets the first one's Worker, and what the first run posts after it ended
 * never reaches the second migration.
 */
import assert from "node:assert/strict";
import { WarmWorkers } from "../../domain/warm_workers.ts";
import { type WorkerHandlers, WorkerHost } from "../../domain/worker_host.ts";
import type { Migration } from "../../domain/migration.ts";
import { waitFor } from "../../harness/wait.ts";

const FIXTURE = new URL("../helpers/warm_fixture_worker.ts", import.meta.url);

/** Handlers recording what a host hears: passes, errors set on its migration, its end. */
function recorder() {
  const seen = { passes: [] as number[], errors: [] as string[], done: 0 };
  const migration = { setError: (message: string) => seen.errors.push(message) };
  const handlers: WorkerHandlers = {
    current: () => migration as unknown as Migration,
    onPass: (pass) => seen.passes.push(pass),
    onDone: () => seen.done++,
  };
  return { seen, handlers };
}

Deno.test("warm workers: the next run reuses the Worker; a finished run's late messages are dropped", async () => {
  const warm = new WarmWorkers();
  try {
    const first = recorder();
    new WorkerHost(FIXTURE, { t: "start" }, first.handlers, [], warm);
    await waitFor("the first run to end", () => first.seen.done === 1);
    assert.deepEqual(first.seen.passes, [1]);

    const second = recorder();
    const host = new WorkerHost(FIXTURE, { t: "start", hold: true }, second.handlers, [], warm);
    await waitFor("the second run's pass", () => second.seen.passes.length === 1);
    assert.deepEqual(second.seen.passes, [2], "the same Worker, started a second time");
    // The first run's leftover error comes 20 ms after its end: it must reach no one.
    await new Promise((r) => setTimeout(r, 100));
    assert.deepEqual(second.seen.errors, []);
    assert.deepEqual(first.seen.errors, [], "a host whose run ended hears nothing more");
    host.terminate();

    // Without a warm pool every run gets a Worker of its own.
    const alone = recorder();
    const own = new WorkerHost(FIXTURE, { t: "start", hold: true }, alone.handlers);
    await waitFor("a fresh Worker's pass", () => alone.seen.passes.length === 1);
    assert.deepEqual(alone.seen.passes, [1]);
    own.terminate();
  } finally {
    warm.close();
  }
});

Deno.test("warm workers: one idle Worker per module; after close every one given back ends", () => {
  const warm = new WarmWorkers();
  const url = FIXTURE;
  const a = warm.take(url);
  const b = warm.take(url);
  assert.notEqual(a, b, "nothing idle yet: two new Workers");
  warm.give(url, a);
  warm.give(url, b); // a second idle one is terminated, not kept
  assert.equal(warm.take(url), a);
  warm.close();
  const c = new Worker(url, { type: "module" });
  warm.give(url, c); // terminated: the agent is shutting down
  const d = warm.take(url);
  assert.notEqual(d, c);
  d.terminate();
  a.terminate();
});

/** Records every Worker this process starts from now on, until `restore()`. */
function recordWorkers(): { made: Worker[]; restore: () => void } {
  const made: Worker[] = [];
  const Real = globalThis.Worker;
  globalThis.Worker = class extends Real {
    constructor(url: string | URL, options?: WorkerOptions) {
      super(url, options);
      made.push(this);
    }
  };
  return { made, restore: () => (globalThis.Worker = Real) };
}

/** Starts a run in `w` (the fixture) and resolves to the `warm-up` messages it had before. */
function firstPass(w: Worker): Promise<number> {
  return new Promise((resolve) => {
    w.onmessage = (e) => {
      if (e.data.t === "pass") resolve(e.data.warmUps);
    };
    w.postMessage({ t: "start", hold: true });
  });
}

Deno.test("warm workers: prestart keeps one Worker started ahead (told to warm up) for the first take; one that fails to load is dropped, no uncaught error here", async () => {
  const { made, restore } = recordWorkers();
  const warm = new WarmWorkers();
  try {
    warm.prestart(FIXTURE);
    warm.prestart(FIXTURE);
    assert.equal(made.length, 1, "one started ahead, not two");
    const first = warm.take(FIXTURE);
    assert.equal(first, made[0], "the first take gets the Worker started ahead");
    const fresh = warm.take(FIXTURE);
    assert.notEqual(fresh, first, "nothing idle after it: a new one");
    // The one started ahead was asked to warm its data path up while idle; a Worker started
    // for a take was not (its migration would wait for it).
    assert.deepEqual(await firstPass(first), 1);
    assert.deepEqual(await firstPass(fresh), 0);
    // A module that cannot load: its error is no one's (no uncaught error in this process);
    // the Worker is dropped, so the next prestart starts another.
    const bad = new URL("data:application/javascript,throw new Error('cannot load')");
    warm.prestart(bad);
    const before = made.length;
    await waitFor("the Worker that failed to load to be dropped", () => {
      warm.prestart(bad);
      return made.length === before + 1;
    });
    warm.close();
    warm.prestart(FIXTURE);
    assert.equal(made.length, before + 1, "nothing starts once closed");
  } finally {
    restore();
    warm.close();
    for (const w of made) w.terminate();
  }
});

Deno.test("warm workers: prestart with a count keeps that many started ahead, each told to warm up; takes come first-started first", async () => {
  const warm = new WarmWorkers();
  const { made, restore } = recordWorkers();
  try {
    warm.prestart(FIXTURE, { t: "warm-up" }, 2);
    warm.prestart(FIXTURE, { t: "warm-up" }, 2);
    assert.equal(made.length, 2, "two kept, none more");
    const a = warm.take(FIXTURE);
    warm.prestart(FIXTURE, { t: "warm-up" }, 2);
    assert.equal(made.length, 3, "one started again to make two");
    assert.equal(a, made[0]);
    assert.equal(warm.take(FIXTURE), made[1]);
    assert.equal(warm.take(FIXTURE), made[2]);
    for (const w of made) assert.equal(await firstPass(w), 1, "each was told to warm up");
  } finally {
    restore();
    warm.close();
    for (const w of made) w.terminate();
  }
});
