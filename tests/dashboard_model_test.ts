/**
 * Issue 7: the dashboard's pure parts, without a browser: the SSE parser, the progress
 * bar's rule, the state diagram against the engine's transition table, number
 * formatting, which buttons are enabled, and how events are logged.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MIGRATION_STATUSES, type Side, TRANSITIONS } from "../domain/state_machine.ts";
import { enabledActions } from "../web/actions.js";
import { niceScale } from "../web/chart.js";
import { describeEvent, eventTone } from "../web/event_log.js";
import {
  formatBytes,
  formatCount,
  formatMbps,
  formatMs,
  formatRamBacking,
  ProgressTracker,
} from "../web/model.js";
import { parameterHint } from "../web/options.js";
import { sseDecoder } from "../web/sse.js";
import {
  diagramSvg,
  DIRECT,
  edgeKey,
  FROM_BOX,
  NODES,
  SETUP_OR_ACTIVE,
} from "../web/state_diagram.js";
import { gaugeScale } from "../web/switchover.js";

const seed = Date.now();
console.log("fast-check seed", seed);

Deno.test("SSE parser: any chunking and any line ending give the same events", () => {
  const field = fc.stringMatching(/^[A-Za-z0-9 _:{}",.-]{0,12}$/);
  const event = fc.record({
    id: fc.stringMatching(/^[0-9]{1,4}$/),
    event: fc.constantFrom("MIGRATION", "MIGRATION_PASS", "progress", "MIGRATION_POLICY"),
    data: fc.array(field, { minLength: 1, maxLength: 3 }),
    comment: fc.boolean(),
  });
  fc.assert(
    fc.property(
      fc.array(event, { maxLength: 8 }),
      fc.constantFrom("\n", "\r\n", "\r"),
      fc.array(fc.nat(40), { maxLength: 30 }),
      (events, eol, cuts) => {
        const text = events.map((e) =>
          (e.comment ? `: heartbeat${eol}${eol}` : "") +
          `id: ${e.id}${eol}event: ${e.event}${eol}` +
          e.data.map((d) => `data: ${d}${eol}`).join("") + eol
        ).join("");
        const got: unknown[] = [];
        const parser = sseDecoder((m) => got.push(m));
        let at = 0;
        for (const cut of cuts) {
          parser.feed(text.slice(at, at + cut));
          at = Math.min(text.length, at + cut);
        }
        parser.feed(text.slice(at));
        assert.deepEqual(
          got,
          events.map((e) => ({ id: e.id, event: e.event, data: e.data.join("\n") })),
        );
        assert.equal(parser.lastEventId, events.at(-1)?.id ?? "");
      },
    ),
    { seed },
  );
});

Deno.test("SSE parser: fields as the spec reads them; the last id carries over", () => {
  const got: unknown[] = [];
  const p = sseDecoder((m) => got.push(m));
  p.feed("data:no space\n\nid\ndata\n\nevent: x\n\n");
  p.feed('id: 7\nretry: 10\ndata: {"a":1}\n\nevent: y\ndata: 2\n\n');
  assert.deepEqual(got, [
    { id: "", event: "message", data: "no space" },
    { id: "", event: "message", data: "" },
    { id: "7", event: "message", data: '{"a":1}' },
    { id: "7", event: "y", data: "2" },
  ]);
  assert.equal(p.lastEventId, "7");
});

type Op =
  | { kind: "pass"; n: number }
  | { kind: "info"; transferred: number; remaining: number; syncs: number }
  | { kind: "done" };

Deno.test("progress: within a pass the bar never runs backwards; completed is 100 %", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({ kind: fc.constant("pass" as const), n: fc.integer({ min: 0, max: 12 }) }),
    fc.record({
      kind: fc.constant("info" as const),
      transferred: fc.nat(1 << 30),
      remaining: fc.nat(1 << 30),
      syncs: fc.integer({ min: 0, max: 12 }),
    }),
    fc.constant({ kind: "done" as const }),
  );
  fc.assert(
    fc.property(fc.array(op, { maxLength: 60 }), (ops) => {
      const t = new ProgressTracker();
      let before = t.view();
      for (const o of ops) {
        if (o.kind === "pass") t.pass(o.n);
        else if (o.kind === "done") {
          t.info({ status: "completed", "x-id": "m", ram: { transferred: 1, total: 1 } });
        } else {
          t.info({
            status: "active",
            "x-id": "m",
            ram: {
              transferred: o.transferred,
              remaining: o.remaining,
              total: 1 << 30,
              "dirty-sync-count": o.syncs,
            },
          });
        }
        const now = t.view();
        assert.ok(now.value >= 0 && now.value <= 1, `value ${now.value}`);
        assert.ok(now.pass >= before.pass, "the pass number never goes down");
        if (now.pass === before.pass) assert.ok(now.value >= before.value, "backwards");
        if (o.kind === "done") assert.equal(now.value, 1);
        before = now;
      }
    }),
    { seed },
  );
});

Deno.test("progress: a new pass shows with its first estimate, and bytes per pass add up", () => {
  const t = new ProgressTracker();
  const info = (transferred: number, remaining: number, syncs: number) =>
    t.info({
      status: "active",
      "x-id": "out-1",
      ram: { transferred, remaining, total: 1000, "dirty-sync-count": syncs },
    });
  info(100, 900, 1);
  info(800, 200, 1);
  assert.deepEqual([t.view().pass, t.view().value], [1, 0.8]);
  t.pass(2); // the sync: remaining jumps, but no estimate has come yet
  assert.deepEqual([t.view().pass, t.view().value], [1, 0.8]);
  info(1000, 500, 2);
  assert.equal(t.view().pass, 2);
  assert.ok(Math.abs(t.view().value - 1000 / 1500) < 1e-9);
  info(1200, 100, 2);
  assert.deepEqual(t.view().passes, [{ pass: 1, sent: 800 }, { pass: 2, sent: 400 }]);
  assert.equal(t.view().remaining, 100);
  // Another migration starts from scratch.
  t.info({ status: "setup", "x-id": "out-2" });
  assert.deepEqual([t.view().id, t.view().pass, t.view().passes], ["out-2", 0, []]);
});

/** What the diagram shows leaving `from` on `side` (the box's edges leave its live states). */
function drawnTargets(side: Side, from: string): string[] {
  const table = DIRECT[side] as Record<string, string[]>;
  const live = from in table || Object.values(table).flat().includes(from);
  const direct = table[from] ?? [];
  const box = live && SETUP_OR_ACTIVE.includes(from) ? FROM_BOX[side] : [];
  return [...direct, ...box].sort();
}

Deno.test("state diagram: draws exactly the engine's transitions (colo aside), per side", () => {
  const drawn = MIGRATION_STATUSES.filter((s) => s !== "colo");
  assert.deepEqual(Object.keys(NODES).sort(), [...drawn].sort());
  for (const side of ["source", "destination"] as const) {
    for (const from of drawn) {
      const allowed = (TRANSITIONS[side][from] ?? []).filter((s) => s !== "colo");
      assert.deepEqual(drawnTargets(side, from), [...allowed].sort(), `${side} ${from}`);
    }
  }
  const svg = diagramSvg({
    current: "failed",
    path: ["setup", "active", "failed"],
    side: "source",
  });
  const edges = [...svg.matchAll(/data-edge="([^"]+)"/g)].map((m) => m[1]);
  for (const [from, targets] of Object.entries(TRANSITIONS.source)) {
    for (const to of targets ?? []) {
      if (to !== "colo" && from !== "colo") assert.ok(edges.includes(edgeKey(from, to)), to);
    }
  }
  assert.match(svg, /class="node current failed"/);
  assert.match(svg, /class="node visited active"/);
  assert.match(svg, /class="edge taken" data-edge="setup>active"/);
  assert.match(svg, /class="edge taken" data-edge="box>failed"/);
  const dest = diagramSvg({ current: "active", path: ["setup", "active"], side: "destination" });
  assert.match(dest, /class="node off pre-switchover"/);
  assert.match(dest, /class="edge off" data-edge="box>cancelling"/);
  assert.match(dest, /class="node current active"/);
});

Deno.test("formatting: MiB, Mbit/s, ms, counts, axis steps, gauges, hints", () => {
  assert.equal(formatBytes(256 * 2 ** 20), "256 MiB");
  assert.equal(formatBytes(1536), "1.5 KiB");
  assert.equal(formatBytes(0), "0 B");
  assert.equal(formatBytes(undefined), "–");
  assert.equal(formatBytes(3.25 * 2 ** 30), "3.25 GiB");
  assert.equal(formatBytes(100 * 2 ** 20), "100 MiB");
  const rb = { "huge-pages": "auto", "page-size": 2 ** 21, "huge-page-bytes": 1020 * 2 ** 20 };
  assert.equal(formatRamBacking(rb, 2 ** 30), "2 MiB pages: 1020 MiB of 1 GiB");
  assert.equal(
    formatRamBacking({ ...rb, "huge-page-bytes": null }, 2 ** 30),
    "2 MiB pages: unknown",
  );
  assert.equal(
    formatRamBacking({ ...rb, "page-size": 4096, "huge-pages": "off" }, 2 ** 30),
    "4 KiB pages (huge pages off)",
  );
  assert.equal(formatRamBacking(undefined, undefined), "–");
  assert.equal(formatMbps(536.9), "537 Mbit/s");
  assert.equal(formatMbps(9123), "9.12 Gbit/s");
  assert.equal(formatMs(97.6), "98 ms");
  assert.equal(formatMs(4230), "4.23 s");
  assert.equal(formatMs(125_000), "2 min 5 s");
  assert.equal(formatCount(12_345), "12.3 k");
  assert.equal(formatCount(2_500_000), "2.5 M");
  assert.deepEqual(niceScale(9123), { top: 10_000, step: 2500 });
  assert.deepEqual(niceScale(0), { top: 1, step: 0.25 });
  assert.deepEqual(gaugeScale(150, 300), { fill: 100 * 150 / 450, mark: 100 * 300 / 450 });
  assert.ok(gaugeScale(900, 300).fill > gaugeScale(900, 300).mark);
  assert.equal(parameterHint("max-bandwidth", 64 * 2 ** 20), "64 MiB/s");
  assert.equal(parameterHint("max-postcopy-bandwidth", 0), "unlimited");
  assert.equal(parameterHint("downtime-limit", 300), "300 ms");
  assert.equal(parameterHint("compress-level", 3), "");
});

Deno.test("buttons: enabled in the states QEMU accepts them", () => {
  const on = (status: string, side: "source" | "destination", runstate = "running") =>
    Object.entries(enabledActions({ status, side, runstate })).filter(([, v]) => v)
      .map(([k]) => k).sort();
  assert.deepEqual(on("none", "source"), ["start"]);
  assert.deepEqual(on("active", "source"), ["cancel", "postcopy"]);
  assert.deepEqual(on("pre-switchover", "source", "finish-migrate"), ["cancel", "continue"]);
  assert.deepEqual(on("postcopy-active", "source"), ["cancel", "pause"]);
  assert.deepEqual(on("postcopy-paused", "source"), ["cancel", "resume"]);
  assert.deepEqual(on("postcopy-paused", "destination", "inmigrate"), ["recover"]);
  assert.deepEqual(on("none", "destination", "inmigrate"), ["incoming"]);
  assert.deepEqual(on("completed", "destination", "running"), ["start"]);
});

Deno.test("event log: any event name is logged; policy events stand out", () => {
  assert.equal(
    describeEvent("MIGRATION", { status: "active", side: "source", id: "out-1" }),
    "source → active  (out-1)",
  );
  assert.equal(describeEvent("MIGRATION_PASS", { pass: 3 }), "dirty-log sync: pass 3");
  assert.equal(describeEvent("MIGRATION_POLICY", { action: "postcopy" }), '{"action":"postcopy"}');
  assert.equal(describeEvent("x", "a".repeat(400)).length, 298);
  assert.equal(eventTone("MIGRATION_POLICY", {}), "policy");
  assert.equal(eventTone("escalation", {}), "policy");
  assert.equal(eventTone("MIGRATION", { status: "failed" }), "bad");
  assert.equal(eventTone("SOMETHING_NEW", {}), "other");
});
