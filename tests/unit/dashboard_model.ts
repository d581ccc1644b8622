/**
 * Issue 7: the dashboard's pure parts, without a browser: the SSE parser, the progress
 * bar's rule, the state diagram against the engine's transition table, number
 * formatting, which buttons are enabled, and how events are logged.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { assessProgress } from "../../domain/progress.ts";
import {
  MIGRATION_STATUSES,
  type MigrationStatus,
  type Side,
  TRANSITIONS,
} from "../../domain/state_machine.ts";
import { enabledActions, shownActions, uriPlaceholder } from "../../web/actions.js";
import { niceScale, thinPasses, tickLabel } from "../../web/chart.js";
import { describeEvent, eventTime, eventTone } from "../../web/event_log.js";
import {
  diskText,
  formatBytes,
  formatClock,
  formatCount,
  formatMbps,
  formatMs,
  formatRamBacking,
  MAX_PASSES,
  ProgressTracker,
} from "../../web/model.js";
import { parameterHint } from "../../web/options.js";
import { sseDecoder } from "../../web/sse.js";
import {
  diagramSvg,
  DIRECT,
  edgeKey,
  FROM_BOX,
  NODES,
  SETUP_OR_ACTIVE,
} from "../../web/state_diagram.js";
import { downtimeVerdict, gaugeScale, switchoverSummary } from "../../web/switchover.js";

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

/** An `x-progress` as the agent's one formula makes it (domain/progress.ts). */
function agentProgress(
  status: MigrationStatus,
  total: number,
  remaining: number,
  verdict?: string,
) {
  return assessProgress({
    status,
    total,
    remaining,
    remainingCost: remaining,
    bandwidth: 1e8,
    downtimeLimit: 300,
    convergence: verdict
      ? { verdict: verdict as "stalled", ...(verdict === "converging" ? { "eta-ms": 900 } : {}) }
      : undefined,
  });
}

Deno.test("progress: the bar is the agent's x-progress, 100 % only when completed (property)", () => {
  const total = 1 << 30;
  fc.assert(
    fc.property(
      fc.array(
        fc.oneof(
          fc.record({ kind: fc.constant("pass" as const), n: fc.integer({ min: 0, max: 12 }) }),
          fc.record({
            kind: fc.constant("info" as const),
            remaining: fc.nat(total),
            syncs: fc.integer({ min: 0, max: 12 }),
          }),
          fc.constant({ kind: "done" as const }),
        ),
        { maxLength: 60 },
      ),
      (ops) => {
        const t = new ProgressTracker();
        for (const o of ops) {
          let progress;
          if (o.kind === "pass") t.pass(o.n);
          else if (o.kind === "done") {
            progress = agentProgress("completed", total, 0);
            t.info({
              status: "completed",
              "x-id": "m",
              ram: { transferred: total, total },
              "x-progress": progress,
            });
          } else {
            progress = agentProgress("active", total, o.remaining, "stalled");
            t.info({
              status: "active",
              "x-id": "m",
              ram: {
                transferred: total - o.remaining,
                remaining: o.remaining,
                total,
                "dirty-sync-count": o.syncs,
              },
              "x-progress": progress,
            });
          }
          const now = t.view();
          if (progress) assert.equal(now.value, progress.percent / 100, "the agent's number");
          assert.ok(now.value >= 0 && now.value <= 1, `value ${now.value}`);
          if (o.kind === "info") assert.ok(now.value < 1, "never full while pages remain");
          if (o.kind === "done") assert.equal(now.value, 1);
        }
      },
    ),
    { seed },
  );
});

Deno.test("progress: a stalled migration shows what is left, not 100 %; bytes per pass add up", () => {
  const t = new ProgressTracker();
  const mib = 2 ** 20;
  const info = (transferred: number, remaining: number, syncs: number) =>
    t.info({
      status: "active",
      "x-id": "out-1",
      ram: { transferred, remaining, total: 256 * mib, "dirty-sync-count": syncs },
      "x-progress": agentProgress("active", 256 * mib, remaining, "stalled"),
    });
  // 10 GiB sent, 67 MiB left: 73.8 % of RAM is not left to send (the old bar said 100 %).
  info(10 * 1024 * mib, 67 * mib, 99);
  assert.equal(t.view().value, 0.738);
  assert.equal(t.view().pass, 99);
  assert.equal(t.view().progress?.state, "stalled");
  t.pass(100);
  info(10 * 1024 * mib + 100 * mib, 67 * mib, 100);
  assert.deepEqual(t.view().passes.at(-1), { pass: 100, sent: 100 * mib });
  // Quick passes (a raised limit: six syncs within one progress interval) began with no
  // reading between them: their bytes are only known together, never "0 B" each.
  for (let n = 101; n <= 106; n++) t.pass(n);
  info(10 * 1024 * mib + 121 * mib, 0, 106);
  assert.deepEqual(t.view().passes.slice(-2), [
    { pass: 100, sent: 100 * mib },
    { pass: 101, last: 106, sent: 21 * mib },
  ]);
  t.pass(107);
  info(10 * 1024 * mib + 125 * mib, 0, 107);
  assert.deepEqual(t.view().passes.at(-1), { pass: 107, sent: 4 * mib }, "one pass, one reading");
  // Another migration starts from scratch.
  t.info({ status: "setup", "x-id": "out-2" });
  assert.deepEqual([t.view().id, t.view().pass, t.view().passes], ["out-2", 0, []]);
  assert.equal(t.view().progress, undefined);
});

Deno.test("progress: a migration that never converges keeps the newest passes, not all of them", () => {
  const t = new ProgressTracker();
  const passes = 200_000; // ~6 hours of a pass every 100 ms
  for (let n = 1; n <= passes; n++) {
    t.pass(n);
    if (n % 1000 === 0) {
      t.info({ status: "active", "x-id": "out-1", ram: { transferred: n, "dirty-sync-count": n } });
    }
  }
  const shown = t.view().passes;
  assert.ok(shown.length <= MAX_PASSES, `${shown.length} passes kept`);
  assert.equal(shown.at(-1)?.pass, passes - 999, "the newest run of passes is there");
  assert.equal(shown.at(-1)?.last, passes);
});

Deno.test("progress: a migration with a disk shows its counters; one without shows none", () => {
  const t = new ProgressTracker();
  const mib = 2 ** 20;
  const ram = { transferred: mib, remaining: 255 * mib, total: 256 * mib, "dirty-sync-count": 1 };
  t.info({ status: "active", "x-id": "out-1", ram });
  assert.equal(t.view().disk, undefined);
  assert.equal(diskText(t.view().disk), "", "no disk: the row is hidden");
  const disk = { transferred: 48 * mib, remaining: 16 * mib, total: 64 * mib };
  t.info({ status: "active", "x-id": "out-1", ram, disk });
  assert.deepEqual(t.view().disk, disk);
  assert.equal(diskText(t.view().disk), "48 MiB sent of 64 MiB · 16 MiB remaining");
  // A progress event without `disk` (e.g. the final one of a status) keeps the last counters.
  t.info({ status: "completed", "x-id": "out-1", ram });
  assert.deepEqual(t.view().disk, disk);
  // The next migration, without a disk, starts with none.
  t.info({ status: "active", "x-id": "out-2", ram });
  assert.equal(t.view().disk, undefined);
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
