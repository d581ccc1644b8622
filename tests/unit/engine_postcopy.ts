/**
 * Postcopy, pause-before-switchover and the return path at the engine level: runSource and
 * runDestination over an in-memory channel pair with real guests and state machines.
 */
import assert from "node:assert/strict";
import { Machine } from "../../adapters/memory/machine.ts";
import { STAT } from "../../domain/engine/stats.ts";
import { migrateInProcess } from "../helpers/engine_pair.ts";

async function pair(size: number, workload: "increment" | "idle") {
  const src = await Machine.create({
    blocks: [{ name: "pc.ram", size }],
    fill: "random",
    workload: { kind: workload },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks: [{ name: "pc.ram", size }],
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: false,
    incoming: true,
    arrivalDigest: true,
  });
  return { src, dst };
}

const migrate = migrateInProcess;

Deno.test("engine: postcopy completes a guest that does not converge in precopy", async () => {
  const { src, dst } = await pair(16 << 20, "increment");
  try {
    const res = await migrate(src, dst, {
      caps: { "postcopy-ram": true },
      arrivalDigest: true,
      // 32 MiB/s against a guest dirtying GB/s (16 MiB: a first pass of half a second)
      params: { "max-bandwidth": 32 << 20, "max-postcopy-bandwidth": 16 << 20 },
      onSourceState: (to, control) => {
        if (to === "active") {
          setTimeout(() => {
            control.startPostcopy = true;
            control.wake.notify();
          }, 300);
        }
      },
    });
    assert.deepEqual(
      res.s.seen,
      ["setup", "active", "postcopy-active", "completed"],
      res.s.errors.join("; "),
    );
    assert.equal(res.ok, true, res.d.errors.join("; "));
    assert.deepEqual(res.d.seen, ["setup", "active", "postcopy-active", "completed"]);
    assert.equal(dst.runstate, "running");
    assert.ok(res.srcStats[STAT.postcopyRequests] > 0, "the destination asked for pages");
    assert.ok(res.dstStats[STAT.blocktime] > 0, "the destination's vCPU blocked on missing pages");
    // The guest as it arrived equals the stopped source; the loop continued consistently.
    const arrived = await dst.digest();
    assert.equal(arrived["x-taken"], "arrival");
    assert.deepEqual(arrived.blocks, (await src.digest("now")).blocks);
    await dst.stop();
    assert.equal((await dst.digest("now"))["x-increment-check"]?.ok, true);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: pause-before-switchover in precopy gives pre-switchover then device", async () => {
  const { src, dst } = await pair(8 << 20, "idle");
  try {
    const res = await migrate(src, dst, {
      caps: { "return-path": true, "pause-before-switchover": true },
      onSourceState: (to, control) => {
        if (to === "pre-switchover") {
          setTimeout(() => {
            control.continued = true;
            control.wake.notify();
          }, 50);
        }
      },
    });
    assert.deepEqual(
      res.s.seen,
      ["setup", "active", "pre-switchover", "device", "completed"],
      res.s.errors.join("; "),
    );
    assert.equal(res.ok, true);
    assert.deepEqual((await src.digest("now")).blocks, (await dst.digest()).blocks);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: with a return path, a destination that fails to load fails the source", async () => {
  const src = await Machine.create({
    blocks: [{ name: "pc.ram", size: 8 << 20 }],
    fill: "random",
    workload: { kind: "increment" },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks: [{ name: "pc.ram", size: 8 << 20 }, { name: "extra", size: 4096 }],
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: false,
    incoming: true,
  });
  try {
    const res = await migrate(src, dst, {
      caps: { "return-path": true },
    });
    assert.equal(res.ok, false);
    assert.equal(res.s.sm.status, "failed");
    assert.equal(src.runstate, "running");
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});
