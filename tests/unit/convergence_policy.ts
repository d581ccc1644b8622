/** The convergence verdict and the policy tracker (pure), with property and edge cases. */
import assert from "node:assert/strict";
import fc from "fast-check";
import { assessConvergence, type ConvergenceInput } from "../../domain/convergence.ts";
import { PolicyTracker } from "../../domain/policy.ts";

const MiB = 1 << 20;
const base: ConvergenceInput = {
  remaining: 64 * MiB,
  bandwidth: 100 * MiB,
  dirtyRate: 10 * MiB,
  downtimeLimit: 300,
  afterSync: [64 * MiB, 20 * MiB, 5 * MiB],
  maxBandwidth: 0,
  autoConverge: false,
  postcopy: false,
  throttle: 0,
};

Deno.test("convergence: estimating until three syncs and a bandwidth exist", () => {
  assert.equal(
    assessConvergence({ ...base, afterSync: [64 * MiB, 20 * MiB] }).verdict,
    "estimating",
  );
  assert.equal(assessConvergence({ ...base, bandwidth: 0 }).verdict, "estimating");
});

Deno.test("convergence: a shrinking remainder with dirty < bandwidth converges, with an ETA", () => {
  const c = assessConvergence(base);
  assert.equal(c.verdict, "converging");
  assert.ok(c["eta-ms"]! > 0 && c["eta-ms"]! < 10_000, `eta ${c["eta-ms"]}`);
  assert.equal(c.ratio, 0.1);
});

Deno.test("convergence: dirtying faster than the link never converges; suggestions fit", () => {
  const hot = { ...base, dirtyRate: 200 * MiB, afterSync: [64 * MiB, 64 * MiB, 64 * MiB] };
  const c = assessConvergence(hot);
  assert.equal(c.verdict, "not-converging");
  assert.match(c.suggestion!, /auto-converge/);
  assert.match(
    assessConvergence({ ...hot, maxBandwidth: 100 * MiB }).suggestion!,
    /raise max-bandwidth above 250 MiB\/s/,
  );
  assert.match(assessConvergence({ ...hot, postcopy: true }).suggestion!, /start postcopy/);
});

Deno.test("convergence: a flat remainder below the link rate is stalled", () => {
  const c = assessConvergence({
    ...base,
    dirtyRate: 90 * MiB,
    afterSync: [64 * MiB, 63 * MiB, 64 * MiB],
  });
  assert.equal(c.verdict, "stalled");
  assert.ok(c.suggestion);
});

Deno.test("convergence: any input gives a known verdict and a finite ETA (property)", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const n = fc.double({ min: 0, max: 1e10, noNaN: true });
  fc.assert(
    fc.property(
      n,
      n,
      n,
      fc.array(n, { minLength: 0, maxLength: 4 }),
      fc.nat(2_000_000),
      (r, b, d, hist, dl) => {
        const c = assessConvergence({
          ...base,
          remaining: r,
          bandwidth: b,
          dirtyRate: d,
          afterSync: hist,
          downtimeLimit: dl,
        });
        assert.ok(["estimating", "converging", "stalled", "not-converging"].includes(c.verdict));
        if (c["eta-ms"] !== undefined) assert.ok(Number.isFinite(c["eta-ms"]) && c["eta-ms"] >= 0);
      },
    ),
    { seed },
  );
});

Deno.test("policy: the progress timeout fires without progress and escalates in order", () => {
  const t = new PolicyTracker(
    { "progress-timeout": 5, actions: ["auto-converge", "postcopy", "cancel"] },
    2 ** 30,
    0,
  );
  assert.equal(t.observe(1000, 100), null);
  assert.equal(t.observe(4000, 99), null); // no new low by 2 %: no progress
  const f1 = t.observe(6000, 99);
  assert.deepEqual(f1, { trigger: "progress-timeout", action: "auto-converge", step: 1 });
  assert.equal(t.observe(8000, 50), null); // progress resets the timer
  assert.equal(t.observe(12_000, 50), null);
  assert.equal(t.observe(13_100, 50)?.action, "postcopy");
  assert.equal(t.observe(18_200, 50)?.action, "cancel");
  assert.equal(t.observe(23_300, 50)?.action, "cancel"); // the last action repeats
});

Deno.test("policy: the completion timeout scales with guest size", () => {
  const t = new PolicyTracker(
    { "completion-timeout-per-gib": 10, actions: ["cancel"] },
    2 * 2 ** 30,
    0,
  );
  assert.equal(t.observe(19_000, 1), null);
  assert.deepEqual(t.observe(20_000, 1), {
    trigger: "completion-timeout",
    action: "cancel",
    step: 1,
  });
  const none = new PolicyTracker({ actions: ["cancel"] }, 2 ** 30, 0);
  assert.equal(none.observe(1e9, 1), null, "no timeout, no firing");
});

Deno.test("convergence: a denormal bandwidth gives no ETA rather than an infinite one (fast-check counterexample)", () => {
  const c = assessConvergence({
    ...base,
    remaining: 2.842170943040401e-17,
    bandwidth: 2.5e-322,
    dirtyRate: 9.4e-323,
    afterSync: [0, 0, 0],
    downtimeLimit: 10,
  });
  assert.equal(c.verdict, "converging");
  assert.equal(c["eta-ms"], undefined);
});
