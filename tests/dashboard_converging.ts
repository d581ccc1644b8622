/**
 * Issues 7 and 20: the page against a scripted agent that replays a long migration whose
 * members are what the agent's own formulas make (`assessConvergence`, `assessProgress`):
 * stalled for a hundred passes until its x-policy turns auto-converge on, then converging
 * with an ETA and a pause that fits. Checks what the page shows of it: the verdict, ETA and
 * the green fit, the policy and convergence events as sentences, each row's own time, the
 * pass labels thinned, readable axis ticks, and a reconnect that resumes after the last id.
 * Issue 23: the guest has a disk; its counters (`disk`) are a row of the progress card.
 * A step of dashboard_browser_test.ts, in its browser.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { assessConvergence, type Convergence } from "../domain/convergence.ts";
import { assessProgress } from "../domain/progress.ts";
import { dashboardRoutes } from "../routes/dashboard.ts";
import type { BrowserContext, Page } from "playwright-core";
import { saveScreenshot, watch } from "./dashboard_browser_kit.ts";

const ID = "out-scripted-1";
const MiB = 2 ** 20;
const TOTAL = 256 * MiB;
const BANDWIDTH = 32 * MiB; // bytes per second, measured
const PASS_MS = 500;
const LAST = 124;
/** The policy's auto-converge fires at this pass; the throttle then shrinks what is left. */
const POLICY_PASS = 100;
/** The guest's disk: copied whole in pass 1, then the blocks it writes per pass resent. */
const DISK = 64 * MiB;
const DISK_DIRTY = 256 * 1024;
/** The scripted events' clock: long before the page loads. */
const T0 = Date.parse("2026-12-06T10:00:00.000Z");

/** RAM left right after the sync that starts pass `n`. */
function afterSync(n: number): number {
  if (n <= 1) return TOTAL;
  if (n <= POLICY_PASS) return (60 + (n % 3)) * MiB;
  return 60 * MiB * 0.9 ** (n - POLICY_PASS);
}

/** A `progress` event's data halfway through pass `n` (or `remaining` given). */
function info(n: number, remaining = afterSync(n) / 2) {
  const throttled = n > POLICY_PASS;
  const dirtyRate = (throttled ? 12 : 30) * MiB;
  const history = [n - 3, n - 2, n - 1, n].filter((k) => k >= 2).map(afterSync);
  const disk = { transferred: DISK + (n - 1) * DISK_DIRTY, remaining: DISK_DIRTY, total: DISK };
  const convergence: Convergence = assessConvergence({
    remaining: remaining + disk.remaining, // as convergenceOf: RAM and disk left
    bandwidth: BANDWIDTH,
    dirtyRate,
    downtimeLimit: 300,
    afterSync: history,
    maxBandwidth: BANDWIDTH,
    autoConverge: throttled,
    postcopy: false,
    throttle: throttled ? 20 : 0,
  });
  return {
    status: "active",
    "x-id": ID,
    "x-side": "source",
    "total-time": n * PASS_MS,
    "setup-time": 9,
    "expected-downtime": Math.round(remaining / BANDWIDTH * 1000),
    ...(throttled ? { "cpu-throttle-percentage": 20 } : {}),
    ram: {
      transferred: n * PASS_MS / 1000 * BANDWIDTH,
      remaining,
      total: TOTAL,
      duplicate: 0,
      skipped: 0,
      normal: n * PASS_MS / 1000 * BANDWIDTH / 4096,
      "normal-bytes": n * PASS_MS / 1000 * BANDWIDTH,
      "dirty-pages-rate": dirtyRate / 4096,
      mbps: BANDWIDTH * 8 / 1e6,
      "dirty-sync-count": n,
      "postcopy-requests": 0,
      "page-size": 4096,
      "multifd-bytes": 0,
    },
    disk,
    "x-convergence": convergence,
    "x-progress": assessProgress({
      status: "active",
      total: TOTAL,
      remaining,
      remainingCost: remaining,
      bandwidth: BANDWIDTH,
      downtimeLimit: 300,
      convergence,
    }),
  };
}

const POLICY_NOTE = "policy: progress-timeout fired (step 1): auto-converge";

/** The scripted stream, in order, with each event's time; `id` is the position plus one. */
function script(): [string, Record<string, unknown>, number][] {
  const out: [string, Record<string, unknown>, number][] = [
    ["MIGRATION", { status: "setup", side: "source", id: ID }, 0],
    ["MIGRATION", { status: "active", side: "source", id: ID }, 9],
  ];
  let verdict = "";
  for (let n = 1; n <= LAST; n++) {
    const t = n * PASS_MS;
    out.push(["MIGRATION_PASS", { pass: n }, t - PASS_MS + 10]);
    const data = info(n);
    const c = data["x-convergence"];
    if (c.verdict !== verdict) {
      verdict = c.verdict;
      out.push(["MIGRATION_CONVERGENCE", { id: ID, ...c }, t - 1]);
    }
    if (n === POLICY_PASS) {
      out.push(["MIGRATION_POLICY", {
        id: ID,
        trigger: "progress-timeout",
        action: "auto-converge",
        step: 1,
        note: POLICY_NOTE,
      }, t - 2]);
    }
    out.push(["progress", data, t]);
  }
  // Late in the last pass: what is left now fits within downtime-limit.
  out.push(["progress", info(LAST, 8 * MiB), LAST * PASS_MS + 200]);
  return out.map(([event, data, ms]) => {
    const time = new Date(T0 + ms).toISOString();
    return [event, { ...data, time }, T0 + ms];
  });
}

const EVENTS = script();

/** The scripted agent: the real dashboard routes, fixed answers, the stream above. */
function scriptedAgent(lastIds: string[]): Hono {
  const app = new Hono();
  app.route("/", dashboardRoutes());
  const last = EVENTS.at(-1)![1];
  app.get("/migrations/current", (c) => c.json(last));
  app.get("/capabilities", (c) => c.json({ "auto-converge": false, "postcopy-ram": true }));
  app.get("/parameters", (c) => c.json({ "downtime-limit": 300, "max-cpu-throttle": 60 }));
  app.get("/machine", (c) => c.json({ runstate: "running", "ram-size": TOTAL }));
  app.get("/openapi.json", (c) => c.json({}, 404));
  app.get("/events", (c) => {
    const from = Number(c.req.header("last-event-id") ?? "0");
    lastIds.push(c.req.header("last-event-id") ?? "");
    // The first connection ends after the first five: the page must reconnect.
    const upTo = from === 0 ? 5 : EVENTS.length;
    const text = EVENTS.slice(from, upTo).map(([event, data], i) =>
      `id: ${from + i + 1}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    ).join("");
    const headers = { "content-type": "text/event-stream", "cache-control": "no-store" };
    if (from === 0) return c.body(text, 200, headers);
    // The second connection stays open, as an agent's does, until the page goes away.
    const signal = c.req.raw.signal;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode(text));
        signal.addEventListener("abort", () => controller.close(), { once: true });
      },
    });
    return new Response(body, { headers });
  });
  return app;
}

/** The page against the scripted agent, in `ctx` (see the module doc). */
export async function convergingAfterPolicy(ctx: BrowserContext): Promise<void> {
  const lastIds: string[] = [];
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    scriptedAgent(lastIds).fetch,
  );
  const base = `http://127.0.0.1:${server.addr.port}`;
  const final = EVENTS.at(-1)![1] as ReturnType<typeof info>;
  assert.equal(final["x-progress"]?.state, "converging", "the script ends converging");
  assert.equal(final["x-progress"]?.fits, "fits");
  let page: Page | null = null;
  try {
    page = await ctx.newPage();
    const seen = watch(page, [404]); // this agent has no OpenAPI document
    await page.goto(`${base}/`);
    const lastPass = page.locator("#log-body tr[data-event=MIGRATION_PASS]", {
      hasText: `pass ${LAST}`,
    });
    await lastPass.waitFor({ timeout: 15_000 });
    assert.deepEqual(lastIds.slice(0, 2), ["0", "5"], "reconnected after the last id");
    await page.locator("#conn[data-state=live]").waitFor();

    // The switchover card: the agent's verdict, ETA and a green fit.
    await page.locator("#verdict", { hasText: "converging" }).waitFor();
    assert.equal(await page.locator("#verdict").getAttribute("data-tone"), "good");
    const eta = final["x-progress"]!["eta-ms"]!;
    assert.ok(eta > 0);
    assert.match(String(await page.locator("#eta").textContent()), /^switchover in ≈ /);
    assert.equal(await page.locator("#downtime-verdict").getAttribute("data-fits"), "fits");
    assert.equal(
      await page.locator("#downtime-verdict").textContent(),
      "fits: can switch over",
    );
    assert.equal(await page.locator("#expected-downtime").textContent(), "250 ms");
    assert.equal(await page.locator("#throttle").textContent(), "20 %");
    // The bar is the agent's percent.
    assert.equal(
      await page.locator("#progress-pct").textContent(),
      `${final["x-progress"]!.percent.toFixed(1)} %`,
    );
    assert.equal(await page.locator("#progress").getAttribute("data-pass"), String(LAST));
    assert.match(String(await page.locator("#passes li.gap").textContent()), /more/);
    // The disk's counters: 64 MiB + 123 × 256 KiB sent, one pass's blocks left.
    assert.equal(await page.locator("#disk-row").isVisible(), true);
    assert.equal(
      await page.locator("#disk-counters").textContent(),
      "94.8 MiB sent of 64 MiB · 256 KiB remaining",
    );

    // Policy and convergence events as sentences; every row at its event's own time.
    const policy = page.locator("#log-body tr[data-event=MIGRATION_POLICY]");
    assert.equal(await policy.getAttribute("class"), "tone-policy");
    assert.equal(await policy.locator("td").nth(3).textContent(), POLICY_NOTE);
    const verdicts = await page.locator(
      "#log-body tr[data-event=MIGRATION_CONVERGENCE] td:nth-child(4)",
    ).allTextContents();
    assert.ok(verdicts.some((v) => v.startsWith("verdict stalled · ")), verdicts.join("\n"));
    assert.ok(verdicts.some((v) => /^verdict converging · .*switchover in ≈/.test(v)));
    assert.ok(verdicts.every((v) => !v.includes("{")), verdicts.join("\n"));
    const rows = await page.locator("#log-body tr").evaluateAll((trs) =>
      trs.map((tr) => ({
        id: tr.querySelector("td")?.textContent ?? "",
        time: tr.querySelector("time")?.getAttribute("datetime") ?? "",
      }))
    );
    const logged = rows.filter((r) => r.id !== "");
    assert.ok(logged.length > LAST, `${logged.length} rows`);
    for (const r of logged) {
      assert.equal(r.time, EVENTS[Number(r.id) - 1][1].time, `row ${r.id}'s time`);
    }

    // 124 passes: thinned labels (the first, every k-th, the latest), readable ticks.
    await page.waitForTimeout(300);
    const chart = page.locator("#chart");
    const labels = String(await chart.getAttribute("data-pass-labels")).split(" ");
    assert.ok(labels.length >= 5 && labels.length <= 17, labels.join(" "));
    assert.equal(labels[0], "1");
    assert.equal(labels.at(-1), String(LAST));
    assert.ok(Number(await chart.getAttribute("data-pass-lines")) < LAST);
    const ticks = String(await chart.getAttribute("data-dirty-ticks")).split("|");
    assert.equal(new Set(ticks).size, ticks.length, ticks.join(" "));
    await page.locator("#diagram .node.current.active").waitFor();
    await saveScreenshot(page, "dashboard_converging.png");
    assert.deepEqual(seen.errors, []);
    assert.deepEqual(seen.urls.filter((u) => new URL(u).origin !== base), []);
  } finally {
    await page?.close();
    await server.shutdown();
  }
}
