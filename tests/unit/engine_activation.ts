/**
 * setup → active is asked of the main thread without waiting for its answer: the source's first
 * pages go out, and the destination loads them, while the answer is on its way; whatever comes
 * later (the completion, a failure) waits for it, and a cancel that came first still wins.
 * Each side's main thread is held back on that one transition here.
 */
import assert from "node:assert/strict";
import { Machine } from "../../adapters/memory/machine.ts";
import type { SourceControl } from "../../domain/engine/source_control.ts";
import { migrateInProcess, type TransitionHold } from "../helpers/engine_pair.ts";

async function guests() {
  const src = await Machine.create({
    blocks: [{ name: "pc.ram", size: 16 << 20 }],
    fill: "random",
    workload: { kind: "idle" },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks: [{ name: "pc.ram", size: 16 << 20 }],
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  return { src, dst };
}

/** Resolves true once `cond()` holds, or false after `ms` (so a test fails instead of hanging). */
function until(cond: () => boolean, ms = 3000): Promise<boolean> {
  const t0 = performance.now();
  return new Promise((resolve) => {
    const tick = () => {
      if (cond()) resolve(true);
      else if (performance.now() - t0 > ms) resolve(false);
      else setTimeout(tick, 1);
    };
    tick();
  });
}

/** Holds `setup → active` until the destination's first page holds the source's bytes. */
function holdActivation(dst: Machine, seen: { pagesFirst: boolean | null }): TransitionHold {
  const page0 = new Uint32Array(dst.shared.ram[0], 0, 1024);
  return (from, to) =>
    from === "setup" && to === "active"
      ? until(() => page0.some((w) => w !== 0)).then((got) => {
        seen.pagesFirst = got;
      })
      : undefined;
}

Deno.test("engine: the source sends pages before its main thread said active", async () => {
  const { src, dst } = await guests();
  try {
    const seen = { pagesFirst: null as boolean | null };
    const { s, d, ok } = await migrateInProcess(src, dst, {
      autostart: false,
      holdSource: holdActivation(dst, seen),
    });
    assert.equal(seen.pagesFirst, true, "no page arrived while the source was still in setup");
    assert.equal(ok, true, d.errors.join("; "));
    assert.deepEqual(s.seen, ["setup", "active", "completed"], s.errors.join("; "));
    assert.deepEqual((await src.digest("now")).blocks, (await dst.digest("now")).blocks);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: the destination loads pages before its main thread said active", async () => {
  const { src, dst } = await guests();
  try {
    const seen = { pagesFirst: null as boolean | null };
    const { s, d, ok } = await migrateInProcess(src, dst, {
      autostart: false,
      holdDestination: holdActivation(dst, seen),
    });
    assert.equal(seen.pagesFirst, true, "the destination loaded nothing while in setup");
    assert.equal(ok, true, d.errors.join("; "));
    assert.deepEqual(d.seen, ["setup", "active", "completed"]);
    assert.deepEqual(s.seen, ["setup", "active", "completed"], s.errors.join("; "));
    assert.deepEqual((await src.digest("now")).blocks, (await dst.digest("now")).blocks);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("engine: a cancel before the source's main thread said active wins", async () => {
  const { src, dst } = await guests();
  try {
    let control: SourceControl | null = null;
    const { s, ok } = await migrateInProcess(src, dst, {
      // The main thread's migrate_cancel runs while setup → active waits: it answers no.
      holdSource: (from, to, sm) =>
        from === "setup" && to === "active"
          ? new Promise<void>((resolve) =>
            setTimeout(() => {
              control!.cancelled = true;
              sm.transition("setup", "cancelling");
              resolve();
            }, 5)
          )
          : undefined,
      onSourceState: (_to, c) => control = c,
    });
    assert.equal(ok, false);
    assert.deepEqual(s.seen.slice(0, 2), ["setup", "cancelling"]);
    assert.equal(s.seen.includes("active"), false);
    assert.equal(src.runstate, "running"); // the guest runs on where it was
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});
