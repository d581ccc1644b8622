/**
 * Issue 7: the dashboard's pure parts, without a browser (2 of 2): the state diagram against
 * the engine's transition table, number formatting, which buttons are enabled, chart axes and
 * pass marks, the switchover card, and how events are logged.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { MIGRATION_STATUSES, type Side, TRANSITIONS } from "../../domain/state_machine.ts";
import { enabledActions, shownActions, uriPlaceholder } from "../../web/actions.js";
import { niceScale, thinPasses, tickLabel } from "../../web/chart.js";
import { describeEvent, eventTime, eventTone } from "../../web/event_log.js";
import {
  formatBytes,
  formatClock,
  formatCount,
  formatMbps,
  formatMs,
  formatRamBacking,
} from "../../web/model.js";
import { parameterHint } from "../../web/options.js";
import {
  diagramSvg,
  DIRECT,
  edgeKey,
  FROM_BOX,
  NODES,
  SETUP_OR_ACTIVE,
} from "../../web/state_diagram.js";
import { downtimeVerdict, gaugeScale, switchoverSummary } from "../../web/switchover.js";
import { agentProgress } from "../helpers/dashboard_progress.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

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
  assert.deepEqual(niceScale(0, 1), { top: 1, step: 1 });
  assert.deepEqual(niceScale(3, 1), { top: 3, step: 1 });
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

Deno.test("buttons: a destination whose guest is arriving offers no outgoing command", () => {
  const shown = (side: "source" | "destination", runstate: string) =>
    Object.entries(shownActions({ status: "setup", side, runstate })).filter(([, v]) => v)
      .map(([k]) => k).sort();
  assert.deepEqual(shown("destination", "inmigrate"), ["incoming", "recover"]);
  assert.equal(shown("source", "running").length, 8);
  assert.equal(shown("destination", "running").length, 8, "the guest arrived: it may move on");
  for (const side of ["source", "destination"] as const) {
    for (const runstate of ["inmigrate", "running"]) {
      const text = uriPlaceholder({ status: "none", side, runstate });
      assert.ok(!/\d+\.\d+\.\d+\.\d+:\d+/.test(text), `no concrete address: ${text}`);
    }
  }
});

Deno.test("axis ticks: every label of an axis differs, whatever the maximum (property)", () => {
  fc.assert(
    fc.property(
      fc.double({ min: 0, max: 1e12, noNaN: true }),
      fc.constantFrom(0, 1),
      (max, minStep) => {
        const { top, step } = niceScale(max, minStep);
        assert.ok((top >= max || max < 1e-3) && step >= minStep, `${top} ${step}`);
        const n = Math.round(top / step);
        assert.ok(n >= 1 && n <= 5, `${n} steps`);
        const labels = Array.from({ length: n + 1 }, (_, i) => tickLabel(i * step, step));
        assert.equal(new Set(labels).size, labels.length, labels.join(" "));
      },
    ),
    { seed },
  );
  // The dashboard's dirty-rate axis before any page was dirtied read "1 1 1 0 0".
  assert.deepEqual([0, 1].map((i) => tickLabel(i, niceScale(0, 1).step)), ["0", "1"]);
  assert.deepEqual([0, 1, 2, 3, 4].map((i) => tickLabel(i * 0.25, 0.25)), [
    "0",
    "0.25",
    "0.5",
    "0.75",
    "1",
  ]);
  assert.equal(tickLabel(7500, 2500), "7.5 k");
});

Deno.test("pass marks: 120 passes get evenly spaced lines and labels, never a hatch", () => {
  const marks = Array.from({ length: 120 }, (_, i) => ({ t: i * 0.5, pass: i + 1 }));
  const x = (t: number) => (t / 80) * 500; // 60 s of passes on an 80 s, 500 px axis
  const { lines, labels } = thinPasses(marks, x);
  assert.equal(labels[0].pass, 1);
  assert.equal(labels.at(-1)!.pass, 120, "the latest pass is named");
  assert.ok(labels.length >= 5 && labels.length <= 10, `${labels.length} labels`);
  for (let i = 1; i < labels.length; i++) {
    assert.ok(x(labels[i].t) - x(labels[i - 1].t) >= 40, `labels ${i - 1} and ${i} crowd`);
  }
  assert.ok(lines.length >= 20 && lines.length <= 40, `${lines.length} lines`);
  for (let i = 2; i < lines.length - 1; i++) {
    assert.ok(x(lines[i].t) - x(lines[i - 1].t) >= 9, `lines ${i - 1} and ${i} crowd`);
  }
  for (const label of labels) assert.ok(lines.includes(label), `pass ${label.pass} has a line`);
  const few = thinPasses(marks.slice(0, 5).map((m) => ({ ...m, t: m.t * 20 })), x);
  assert.deepEqual(few.labels.map((m) => m.pass), [1, 2, 3, 4, 5], "a few passes all named");
  assert.deepEqual(few.lines, few.labels);
  assert.deepEqual(thinPasses([], x), { lines: [], labels: [] });
});

Deno.test("switchover card: the agent's state, ETA and fit; something true after the end", () => {
  const ram = { "dirty-sync-count": 7 };
  const stalled = switchoverSummary(
    { status: "active", ram, "x-progress": agentProgress("active", 100, 40, "stalled") },
    "source",
  );
  assert.deepEqual(stalled, {
    badge: "stalled",
    tone: "warn",
    line: "no ETA: what each pass leaves does not shrink",
    note: "",
  });
  const converging = switchoverSummary(
    { status: "active", ram, "x-progress": agentProgress("active", 100, 1, "converging") },
    "source",
  );
  assert.equal(converging.line, "switchover in ≈ 900 ms");
  assert.equal(converging.tone, "good");
  const done = switchoverSummary({
    status: "completed",
    ram,
    downtime: 31,
    "x-progress": agentProgress("completed", 100, 0),
  }, "source");
  assert.deepEqual(done, {
    badge: "completed",
    tone: "good",
    line: "switched over after 7 passes, guest paused 31 ms",
    note: "",
  });
  assert.match(switchoverSummary({ status: "none" }, "source").note, /No migration yet/);
  assert.match(switchoverSummary({ status: "completed" }, "destination").note, /runs here now/);
  assert.match(switchoverSummary({ status: "cancelled" }, "source").note, /cancelled/);

  const estimating = agentProgress("active", 100, 50);
  assert.deepEqual(downtimeVerdict(estimating, undefined, 300), {
    text: "estimating: no convergence verdict yet",
    fits: "estimating",
  });
  assert.equal(
    downtimeVerdict({ ...estimating!, "expected-downtime": undefined }, undefined, 300).text,
    "estimating: no bandwidth measured yet",
  );
  assert.equal(
    downtimeVerdict(agentProgress("active", 100, 1, "converging"), undefined, 300).fits,
    "fits",
  );
  assert.equal(downtimeVerdict(undefined, 31, 300).text, "guest paused within the limit");
});

Deno.test("event log: a row's time is the event's own, the page's only for its own lines", () => {
  assert.deepEqual(eventTime({ status: "active", time: "2026-12-06T10:17:03.250Z" }), {
    iso: "2026-12-06T10:17:03.250Z",
    source: "agent",
  });
  const before = Date.now();
  const own = eventTime("POST /migrations → accepted");
  assert.equal(own.source, "page");
  assert.ok(Date.parse(own.iso) >= before);
  assert.equal(eventTime({ time: "soon" }).source, "page");
  assert.match(formatClock("2026-12-06T10:17:03.250Z"), /^\d\d:17:03\.250$/);
});

Deno.test("event log: any event name is logged; policy events stand out", () => {
  assert.equal(
    describeEvent("MIGRATION", { status: "active", side: "source", id: "out-1" }),
    "source → active  (out-1)",
  );
  assert.equal(describeEvent("MIGRATION_PASS", { pass: 3 }), "dirty-log sync: pass 3");
  // Ferry's own events read as sentences, not JSON.
  assert.equal(
    describeEvent("MIGRATION_CONVERGENCE", {
      id: "out-1",
      verdict: "stalled",
      ratio: 0.93,
      suggestion: "raise max-bandwidth above 220 MiB/s",
      time: "2026-12-06T10:17:03.250Z",
    }),
    "verdict stalled · dirty rate 0.93× bandwidth · suggestion: raise max-bandwidth above 220 MiB/s",
  );
  assert.equal(
    describeEvent("MIGRATION_CONVERGENCE", { verdict: "converging", "eta-ms": 4230, ratio: 0.2 }),
    "verdict converging · dirty rate 0.2× bandwidth · switchover in ≈ 4.23 s",
  );
  const note = "policy: progress-timeout fired (step 1): auto-converge";
  assert.equal(
    describeEvent("MIGRATION_POLICY", {
      id: "out-1",
      trigger: "progress-timeout",
      action: "auto-converge",
      step: 1,
      note,
    }),
    note,
  );
  assert.equal(
    describeEvent("MIGRATION_POLICY", { trigger: "completion-timeout", step: 2, action: "cancel" }),
    "policy: completion-timeout fired (step 2): cancel",
  );
  assert.equal(describeEvent("NEW", { a: 1, time: "2026-12-06T10:17:03.250Z" }), '{"a":1}');
  assert.equal(describeEvent("x", "a".repeat(400)).length, 298);
  assert.equal(eventTone("MIGRATION_POLICY", {}), "policy");
  assert.equal(eventTone("escalation", {}), "policy");
  assert.equal(eventTone("MIGRATION", { status: "failed" }), "bad");
  assert.equal(eventTone("SOMETHING_NEW", {}), "other");
});
