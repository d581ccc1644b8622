/**
 * Issue 7: the dashboard's pure parts, without a browser (1 of 2): the SSE parser and the
 * progress bar's rule. The views (state diagram, formatting, buttons, chart axes, the
 * switchover card, the event log) are in dashboard_views.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { diskText, MAX_PASSES, ProgressTracker } from "../../web/model.js";
import { sseDecoder } from "../../web/sse.js";
import { agentProgress } from "../helpers/dashboard_progress.ts";

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
