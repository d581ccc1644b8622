/**
 * Issue 21: the dashboard's COLO card, without a browser: when it shows, the mode and reason
 * from `GET /colo`, the checkpoint counters of `x-colo` as the agent reports them (the
 * schema's own member names), and the COLO_EXIT line.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MigrationInfoSchema } from "../../routes/schemas.ts";
import { coloView, formatPause } from "../../web/colo.js";

const seed = Date.now();
console.log("fast-check seed", seed);

/** Counters as GET /migrations/current reports them in status colo. */
const COUNTERS = {
  checkpoints: 12,
  "checkpoints-periodic": 10,
  "checkpoints-triggered": 2,
  "pause-last-ms": 3.214,
  "pause-p50-ms": 2.9,
  "pause-p99-ms": 18.75,
  "checkpoint-bytes-last": 3 * 1024 * 1024,
  "checkpoint-bytes-total": 24 * 1024 * 1024,
  "records-compared": 1204,
  "records-mismatched": 1,
  "records-held": 3,
};

Deno.test("COLO card: the counters read are the x-colo member's own names", () => {
  const member = MigrationInfoSchema.shape["x-colo"].unwrap();
  assert.deepEqual(Object.keys(member.shape).sort(), Object.keys(COUNTERS).sort());
});

Deno.test("COLO card: a migration that never entered COLO shows no card", () => {
  for (const status of ["none", "active", "completed", "failed", "cancelled"]) {
    const v = coloView({
      status,
      counters: undefined,
      colo: { mode: "none", "last-mode": "none", reason: "none" },
      exit: null,
    });
    assert.equal(v.shown, false, status);
  }
  assert.equal(coloView({ status: "active" }).shown, false);
});

Deno.test("COLO card: in status colo, the primary's mode, checkpoints, pause, bytes, records", () => {
  const v = coloView({
    status: "colo",
    counters: COUNTERS,
    colo: { mode: "primary", "last-mode": "none", reason: "none" },
    exit: null,
  });
  assert.equal(v.shown, true);
  assert.equal(v.mode, "primary");
  assert.equal(v.tone, "good");
  assert.equal(v.reason, "none");
  assert.equal(v.checkpoints, "12: 10 periodic / 2 triggered");
  assert.equal(v.pause, "last 3.21 ms · p50 2.9 ms · p99 18.8 ms");
  assert.equal(v.bytes, "last 3 MiB · average 2 MiB · 24 MiB in all");
  assert.equal(v.records, "1.2 k compared · 3 held · 1 mismatched");
  assert.equal(v.exit, "");
});

Deno.test("COLO card: status colo before GET /colo and before the first checkpoint", () => {
  const v = coloView({
    status: "colo",
    counters: { ...COUNTERS, checkpoints: 0, "checkpoints-periodic": 0 },
    colo: null,
    exit: null,
  });
  assert.equal(v.shown, true);
  assert.equal(v.mode, "–");
  assert.equal(v.checkpoints, "0: 0 periodic / 2 triggered");
  assert.equal(v.pause, "–", "no pause before a checkpoint");
  assert.equal(v.bytes, "–");
});

Deno.test("COLO card: after COLO_EXIT it stays, with the last mode, the reason and the exit", () => {
  const v = coloView({
    status: "completed",
    counters: COUNTERS,
    colo: { mode: "none", "last-mode": "secondary", reason: "error" },
    exit: { mode: "secondary", reason: "error", time: "2026-12-06T19:00:01.250Z" },
  });
  assert.equal(v.shown, true);
  assert.equal(v.mode, "none (was secondary)");
  assert.equal(v.tone, "bad");
  assert.match(v.reason, /^error: the peer died/);
  assert.match(v.exit, /^\d\d:\d\d:\d\d\.250 secondary left COLO: error$/);
  // The exit alone (a replayed event, counters not yet queried) shows the card too.
  assert.equal(
    coloView({ status: "completed", exit: { mode: "primary", reason: "request" } }).shown,
    true,
  );
});

Deno.test("COLO card: the secondary counts checkpoints applied; the rest is the primary's", () => {
  const applied = { ...COUNTERS, "checkpoints-periodic": 0, "checkpoints-triggered": 0 };
  const v = coloView({
    status: "colo",
    counters: { ...applied, "pause-last-ms": 0, "pause-p50-ms": 0, "pause-p99-ms": 0 },
    colo: { mode: "secondary", "last-mode": "none", reason: "none" },
    side: "destination",
  });
  assert.equal(v.shown, true);
  assert.equal(v.mode, "secondary");
  assert.equal(v.checkpoints, "12 applied");
  assert.equal(v.pause, "the primary's page has it");
  assert.equal(v.records, "the primary's page has it");
  assert.equal(v.bytes, "last 3 MiB · average 2 MiB · 24 MiB in all");
});

Deno.test("COLO card: a side holding after a silent link says so", () => {
  const v = coloView({
    status: "colo",
    counters: COUNTERS,
    colo: { mode: "secondary", "last-mode": "none", reason: "processing" },
  });
  assert.equal(v.mode, "secondary");
  assert.equal(v.tone, "warn");
  assert.match(v.reason, /^processing: .*held until lost-heartbeat/);
});

Deno.test("formatPause: sub-millisecond pauses keep their digits; never more than three", () => {
  assert.equal(formatPause(0.4567), "0.46 ms");
  assert.equal(formatPause(4.5), "4.5 ms");
  assert.equal(formatPause(24.34), "24.3 ms");
  assert.equal(formatPause(78), "78 ms");
  assert.equal(formatPause(312.6), "313 ms");
  assert.equal(formatPause(undefined), "–");
  fc.assert(
    fc.property(fc.double({ min: 0, max: 1e6, noNaN: true }), (ms) => {
      const text = formatPause(ms);
      assert.match(text, /^\d+(\.\d+)? ms$/);
      const digits = text.replace(/ ms$/, "").replace(".", "").replace(/^0+/, "");
      assert.ok(digits.length <= Math.max(3, String(Math.round(ms)).length), text);
      // Within rounding of three significant digits (or a whole ms above 100).
      const back = Number(text.replace(/ ms$/, ""));
      assert.ok(Math.abs(back - ms) <= Math.max(0.005, ms * 0.005, ms >= 100 ? 0.5 : 0), text);
    }),
    { seed },
  );
});
