/**
 * The engine without sockets: runSource and runDestination over an in-memory channel
 * pair, with real guests and state machines standing in for the main thread.
 */
import assert from "node:assert/strict";
import { Machine } from "../../adapters/memory/machine.ts";
import { STAT } from "../../domain/engine/stats.ts";
import type { Channel } from "../../domain/ports.ts";
import { migrateInProcess } from "../helpers/engine_pair.ts";

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
    const { s, d, ok, srcStats, dstStats } = await migrateInProcess(src, dst, { autostart: false });
    assert.equal(ok, true, d.errors.join("; "));
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
    const { s, d, ok } = await migrateInProcess(src, dst);
    assert.equal(ok, false);
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
    // Let the source send a little, then cut the channel under it.
    let writes = 0;
    const { s, d, ok } = await migrateInProcess(src, dst, {
      wrap: (a: Channel): Channel => ({
        read: (p) => a.read(p),
        write: (
          p,
        ) => (++writes === 3 ? (a.close(), Promise.reject(new Error("link cut"))) : a.write(p)),
        closeWrite: () => a.closeWrite(),
        close: () => a.close(),
      }),
    });
    assert.equal(s.sm.status, "failed");
    assert.match(s.errors[0], /link cut/);
    assert.equal(src.runstate, "running");
    assert.equal(ok, false);
    assert.equal(d.sm.status, "failed");
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});
