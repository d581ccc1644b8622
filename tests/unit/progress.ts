/**
 * Issue 20, item 3: `x-progress`, one formula for progress, ETA and the switchover verdict
 * (domain/progress.ts), on its own and as a property over any counters; and the
 * max-bandwidth hint of the convergence verdict never names the current limit or less.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { assessConvergence, type ConvergenceInput } from "../../domain/convergence.ts";
import { assessProgress, type ProgressInput } from "../../domain/progress.ts";
import { MIGRATION_STATUSES } from "../../domain/state_machine.ts";
import { Migration } from "../../domain/migration.ts";
import { progressOf } from "../../domain/migration_info.ts";
import { STAT } from "../../domain/engine/stats.ts";

const MiB = 1 << 20;
const seed = Date.now();
console.log("fast-check seed", seed);

const active: ProgressInput = {
  status: "active",
  total: 256 * MiB,
  remaining: 67 * MiB,
  remainingCost: 67 * MiB,
  bandwidth: 32 * MiB,
  downtimeLimit: 300,
};

Deno.test("progress: a stalled migration is 73.8 %, with no ETA and no fit", () => {
  const p = assessProgress({
    ...active,
    convergence: { verdict: "stalled", ratio: 0.9, suggestion: "x" },
  })!;
  // (256 − 67) / 256 = 73.83 %: what is not left to send, however much was resent.
  assert.deepEqual(p, {
    percent: 73.8,
    remaining: 67 * MiB,
    state: "stalled",
    "expected-downtime": 2094,
    fits: "too-long",
  });
});

Deno.test("progress: before the first bandwidth measurement everything is estimating", () => {
  const p = assessProgress({ ...active, bandwidth: 0, convergence: { verdict: "estimating" } })!;
  assert.deepEqual(p, {
    percent: 73.8,
    remaining: 67 * MiB,
    state: "estimating",
    fits: "estimating",
  });
  assert.deepEqual(assessProgress({ ...active, status: "setup", total: 0, bandwidth: 0 }), {
    percent: 0,
    remaining: 67 * MiB,
    state: "estimating",
    fits: "estimating",
  });
});

Deno.test("progress: converging with the pause within the limit fits, with the verdict's ETA", () => {
  const small = { ...active, remaining: 4 * MiB, remainingCost: 4 * MiB };
  const converging = { verdict: "converging" as const, "eta-ms": 420, ratio: 0.2 };
  assert.deepEqual(assessProgress({ ...small, convergence: converging }), {
    percent: 98.4,
    remaining: 4 * MiB,
    state: "converging",
    "eta-ms": 420,
    "expected-downtime": 125,
    fits: "fits",
  });
  // Early in pass 1: no verdict yet, so no green light even when the pause would fit.
  assert.equal(
    assessProgress({ ...small, convergence: { verdict: "estimating" } })!.fits,
    "estimating",
  );
  // Over the limit is too long, whatever the verdict.
  assert.equal(assessProgress({ ...active, convergence: converging })!.fits, "too-long");
});

Deno.test("progress: 100 % only once completed; other phases say what they are", () => {
  assert.deepEqual(assessProgress({ ...active, status: "completed" }), {
    percent: 100,
    remaining: 0,
    state: "completed",
  });
  const last = { ...active, remaining: 4096, remainingCost: 4096 };
  assert.equal(assessProgress(last)!.percent, 99.9);
  assert.equal(assessProgress({ ...last, remaining: 0, remainingCost: 0 })!.percent, 99.9);
  assert.deepEqual(assessProgress({ ...active, status: "device" }), {
    percent: 73.8,
    remaining: 67 * MiB,
    state: "switchover",
  });
  assert.deepEqual(assessProgress({ ...active, status: "postcopy-active" }), {
    percent: 73.8,
    remaining: 67 * MiB,
    state: "postcopy",
    "eta-ms": 2094,
  });
  assert.deepEqual(assessProgress({ ...active, status: "postcopy-paused" }), {
    percent: 73.8,
    remaining: 67 * MiB,
    state: "postcopy",
  });
  for (const status of ["none", "failed", "cancelled", "colo"] as const) {
    assert.equal(assessProgress({ ...active, status }), undefined, status);
  }
});

Deno.test("progress: the rules hold for any counters (property)", () => {
  const bytes = fc.double({ min: 0, max: 2 ** 40, noNaN: true });
  const verdict = fc.option(
    fc.record({
      verdict: fc.constantFrom("estimating", "converging", "stalled", "not-converging"),
      "eta-ms": fc.option(fc.nat(10_000_000), { nil: undefined }),
    }, { requiredKeys: ["verdict"] }),
    { nil: undefined },
  );
  fc.assert(
    fc.property(
      fc.constantFrom(...MIGRATION_STATUSES),
      bytes,
      bytes,
      fc.double({ min: 0, max: 4, noNaN: true }),
      fc.oneof(fc.constant(0), fc.double({ min: 1e-3, max: 1e11, noNaN: true })),
      fc.nat(2_000_000),
      verdict,
      (status, total, remaining, costRatio, bandwidth, downtimeLimit, convergence) => {
        const input: ProgressInput = {
          status,
          total,
          remaining,
          remainingCost: remaining * costRatio,
          bandwidth,
          downtimeLimit,
          convergence,
        };
        const p = assessProgress(input);
        if (p === undefined) {
          assert.ok(["none", "failed", "cancelled", "colo"].includes(status), status);
          return;
        }
        assert.ok(p.percent >= 0 && p.percent <= 100, `percent ${p.percent}`);
        assert.equal(p.percent === 100, status === "completed", "100 % exactly when completed");
        assert.equal(Math.round(p.percent * 10) / 10, p.percent, "one decimal");
        if (p["eta-ms"] !== undefined) {
          assert.ok(bandwidth > 0, "an ETA needs a measured bandwidth");
          assert.ok(p.state === "converging" || p.state === "postcopy", p.state);
          assert.ok(Number.isFinite(p["eta-ms"]) && p["eta-ms"] >= 0);
        }
        if (p.fits === "fits") {
          assert.equal(p.state, "converging");
          assert.ok(p["expected-downtime"]! <= downtimeLimit);
        }
        if (!(bandwidth > 0)) {
          assert.equal(p["eta-ms"], undefined);
          assert.equal(p["expected-downtime"], undefined);
          if (p.fits !== undefined) assert.equal(p.fits, "estimating");
          if (status === "active") assert.equal(p.state, "estimating");
        }
        if (status === "active" && bandwidth > 0 && convergence) {
          assert.equal(p.state, convergence.verdict);
        }
        // Less left never shows less done.
        if (total > 0 && status !== "completed") {
          const more = assessProgress({ ...input, remaining: remaining / 2 })!;
          assert.ok(more.percent >= p.percent, `${more.percent} < ${p.percent}`);
        }
      },
    ),
    { seed, numRuns: 500 },
  );
});

const limited: ConvergenceInput = {
  remaining: 67 * MiB,
  bandwidth: 31 * MiB,
  dirtyRate: 23 * MiB,
  downtimeLimit: 300,
  afterSync: [67 * MiB, 66 * MiB, 67 * MiB],
  maxBandwidth: 32 * MiB,
  autoConverge: false,
  postcopy: false,
  throttle: 0,
};

Deno.test("convergence hint: raising max-bandwidth names enough to send a pass's leftovers", () => {
  const c = assessConvergence(limited);
  assert.equal(c.verdict, "stalled");
  // 66 MiB left after each sync, sent within 300 ms: 220 MiB/s (not 29 MiB/s, under the limit).
  assert.equal(c.suggestion, "raise max-bandwidth above 220 MiB/s");
});

Deno.test("convergence hint: never a max-bandwidth at or below the current one (property)", () => {
  const rate = fc.double({ min: 0, max: 1e10, noNaN: true });
  fc.assert(
    fc.property(
      rate,
      fc.double({ min: 1, max: 1e10, noNaN: true }),
      rate,
      fc.array(rate, { minLength: 3, maxLength: 4 }),
      fc.nat(2_000_000),
      (remaining, max, dirtyRate, afterSync, downtimeLimit) => {
        const c = assessConvergence({
          ...limited,
          remaining,
          maxBandwidth: max,
          bandwidth: max, // at the limit: the hint is about max-bandwidth
          dirtyRate,
          afterSync,
          downtimeLimit,
        });
        const named = /raise max-bandwidth above (\d+) MiB\/s/.exec(c.suggestion ?? "");
        if (named) assert.ok(Number(named[1]) * MiB > max, `${named[1]} MiB/s ≤ ${max} B/s`);
      },
    ),
    { seed, numRuns: 500 },
  );
});

Deno.test("x-progress of a migration: right after a sync, what the sync left, not the stale 0", () => {
  const m = new Migration("source", "tcp:127.0.0.1:1", () => {});
  m.machine.transition("none", "setup");
  m.machine.transition("setup", "active");
  const s = m.stats;
  s[STAT.total] = 16 * MiB;
  s[STAT.bandwidth] = 16 * MiB / 1000; // bytes per ms
  // Before the Worker's first refresh: nothing sent, so all of RAM is left (not 0, 99.9 %).
  assert.equal(progressOf(m)!.percent, 0);
  assert.equal(progressOf(m)!.remaining, 16 * MiB);
  // Mid-pass 1, refreshed: 8 MiB sent.
  s[STAT.transferred] = 8 * MiB;
  s[STAT.remaining] = 8 * MiB;
  assert.equal(progressOf(m)!.percent, 50);
  // A sync leaves 14 MiB; the Worker refreshes `remaining` only after its next chunk.
  s[STAT.remaining] = 0;
  s[STAT.transferred] = 16 * MiB;
  s[STAT.afterSync] = 14 * MiB;
  s[STAT.afterSyncCount] = 1;
  s[STAT.dirtySyncCount] = 2;
  assert.equal(progressOf(m)!.remaining, 14 * MiB, "what the sync left, while nothing moved");
  assert.equal(progressOf(m)!.percent, 12.5);
  // The next chunk: fresh again.
  s[STAT.transferred] = 24 * MiB;
  s[STAT.remaining] = 6 * MiB;
  assert.equal(progressOf(m)!.remaining, 6 * MiB);
  assert.equal(progressOf(m)!.percent, 62.5);
});
