/**
 * The engine without sockets: runSource and runDestination over an in-memory channel
 * pair, with real guests and state machines standing in for the main thread.
 */
import assert from "node:assert/strict";
import { memoryChannelPair } from "../adapters/channels/memory_pair.ts";
import { Machine } from "../adapters/memory/machine.ts";
import { MainLink } from "../domain/engine/main_link.ts";
import type { MainMessage, WorkerMessage } from "../domain/engine/messages.ts";
import { runDestination } from "../domain/engine/dest_run.ts";
import { runSource } from "../domain/engine/source_run.ts";
import { createStats, STAT } from "../domain/engine/stats.ts";
import { MIGRATION_STATUSES, type Side, StateMachine } from "../domain/state_machine.ts";
import type { Channel } from "../domain/ports.ts";

/** A main thread stand-in: answers transitions with a real StateMachine. */
function fakeMain(side: Side) {
  const status = new Int32Array(new SharedArrayBuffer(4));
  const seen: string[] = [];
  const errors: string[] = [];
  const sm = new StateMachine(side, (_f, to) => {
    Atomics.store(status, 0, MIGRATION_STATUSES.indexOf(to));
    seen.push(to);
  });
  sm.transition("none", "setup");
  const link: MainLink = new MainLink(status, (m: WorkerMessage) => {
    if (m.t === "transition") {
      const ok = sm.transition(m.from, m.to);
      queueMicrotask(() => link.receive({ t: "transition-result", seq: m.seq, ok } as MainMessage));
    } else if (m.t === "error") errors.push(m.message);
  });
  return { sm, link, seen, errors };
}

async function guests(srcBlocks: number, dstBlocks = srcBlocks) {
  const src = await Machine.create({
    blocks: [{ name: "pc.ram", size: srcBlocks }],
    fill: "random",
    workload: { kind: "increment" },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks: [{ name: "pc.ram", size: dstBlocks }],
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  return { src, dst };
}

Deno.test("engine: precopy over a memory pair loads the guest exactly", async () => {
  const { src, dst } = await guests(16 << 20);
  try {
    const [a, b] = memoryChannelPair(1 << 20);
    const s = fakeMain("source");
    const d = fakeMain("destination");
    const srcStats = createStats();
    const dstStats = createStats();
    const dest = runDestination({ guest: dst.shared, stats: dstStats, link: d.link, autostart: false }, b);
    await runSource({
      guest: src.shared,
      stats: srcStats,
      link: s.link,
      params: { maxBandwidth: 0, downtimeLimit: 300 },
      connect: () => Promise.resolve(a as Channel),
      onWriter: () => {},
    });
    assert.equal(await dest, true, d.errors.join("; "));
    assert.deepEqual(s.seen, ["setup", "active", "completed"], s.errors.join("; "));
    assert.deepEqual(d.seen, ["setup", "active", "completed"]);
    assert.equal(src.runstate, "postmigrate");
    assert.equal(dst.runstate, "paused"); // autostart off (-S)
    assert.deepEqual((await src.digest("now")).blocks, (await dst.digest("now")).blocks);
    assert.ok(srcStats[STAT.normal] > 0 && srcStats[STAT.dirtySyncCount] >= 2);
    assert.equal(dstStats[STAT.normal] + dstStats[STAT.duplicate] >= 4096, true);
    assert.equal(dst.info().workload["pages-written"], src.info().workload["pages-written"]);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: a layout mismatch fails the destination, which never runs", async () => {
  const { src, dst } = await guests(8 << 20, 4 << 20);
  try {
    const [a, b] = memoryChannelPair(1 << 20);
    const s = fakeMain("source");
    const d = fakeMain("destination");
    const dest = runDestination({ guest: dst.shared, stats: createStats(), link: d.link, autostart: true }, b);
    await runSource({
      guest: src.shared,
      stats: createStats(),
      link: s.link,
      params: { maxBandwidth: 0, downtimeLimit: 300 },
      connect: () => Promise.resolve(a as Channel),
      onWriter: () => {},
    });
    assert.equal(await dest, false);
    assert.match(d.errors[0], /Configuration mismatch/);
    assert.deepEqual(d.seen, ["setup", "active", "failed"]);
    assert.equal(dst.runstate, "inmigrate");
    // The source saw its peer close: failed, and its guest runs on.
    assert.equal(s.sm.status, "failed");
    assert.equal(src.runstate, "running");
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: a stream cut before the device state leaves the destination failed", async () => {
  const { src, dst } = await guests(8 << 20);
  try {
    const [a, b] = memoryChannelPair(1 << 20);
    const d = fakeMain("destination");
    const s = fakeMain("source");
    const dest = runDestination({ guest: dst.shared, stats: createStats(), link: d.link, autostart: true }, b);
    // Let the source send a little, then cut the channel under it.
    let writes = 0;
    const cutting: Channel = {
      read: (p) => a.read(p),
      write: (p) => (++writes === 3 ? (a.close(), Promise.reject(new Error("link cut"))) : a.write(p)),
      closeWrite: () => a.closeWrite(),
      close: () => a.close(),
    };
    await runSource({
      guest: src.shared,
      stats: createStats(),
      link: s.link,
      params: { maxBandwidth: 0, downtimeLimit: 300 },
      connect: () => Promise.resolve(cutting),
      onWriter: () => {},
    });
    assert.equal(s.sm.status, "failed");
    assert.match(s.errors[0], /link cut/);
    assert.equal(src.runstate, "running");
    assert.equal(await dest, false);
    assert.equal(d.sm.status, "failed");
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});
