/**
 * Issue 7: what the page does with members and events that a Ferry agent may add later
 * (`x-convergence` in MigrationInfo, MIGRATION_POLICY and escalation events): a scripted
 * agent serves the real page through `dashboardRoutes` and replays a fixed event stream.
 * Also checks the page's live pieces against it: a pass in the log and the chart, the
 * downtime over its limit, the throttle, a reconnect that resumes after the last id.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { dashboardRoutes } from "../routes/dashboard.ts";
import { saveScreenshot, watch, withBrowser } from "./dashboard_browser_kit.ts";

const ID = "out-scripted-1";

function info(ms: number, transferred: number, extra: Record<string, unknown> = {}) {
  return {
    status: "active",
    "x-id": ID,
    "x-side": "source",
    "total-time": ms,
    "setup-time": 9,
    "expected-downtime": 820,
    "cpu-throttle-percentage": 30,
    ram: {
      transferred,
      remaining: 64 * 2 ** 20,
      total: 256 * 2 ** 20,
      duplicate: 0,
      skipped: 0,
      normal: transferred / 4096,
      "normal-bytes": transferred,
      "dirty-pages-rate": 9000 + ms,
      mbps: 480 + ms / 100,
      "dirty-sync-count": ms < 1000 ? 1 : 2,
      "postcopy-requests": 0,
      "page-size": 4096,
      "multifd-bytes": 0,
    },
    ...extra,
  };
}

const CONVERGENCE = {
  verdict: "stalled",
  "eta-ms": 12_000,
  suggestion: "raise max-bandwidth or enable auto-converge",
};

/** The scripted stream, in order; `id` is the position plus one. */
const EVENTS: [string, unknown][] = [
  ["MIGRATION", { status: "setup", side: "source", id: ID }],
  ["MIGRATION_PASS", { pass: 1 }],
  ["MIGRATION", { status: "active", side: "source", id: ID }],
  ...[250, 500, 750].map((t): [string, unknown] => ["progress", info(t, t * 100_000)]),
  ["MIGRATION_PASS", { pass: 2 }],
  ["progress", info(1000, 120_000_000, { "x-convergence": CONVERGENCE })],
  ["MIGRATION_POLICY", { action: "escalate", to: "auto-converge", reason: "stalled for 3 passes" }],
  ["progress", info(1250, 130_000_000, { "x-convergence": CONVERGENCE })],
];

/** The scripted agent: the real dashboard routes, fixed answers, the stream above. */
function scriptedAgent(lastIds: string[]): Hono {
  const app = new Hono();
  app.route("/", dashboardRoutes());
  const last = EVENTS.at(-1)![1] as Record<string, unknown>;
  app.get("/migrations/current", (c) => c.json(last));
  app.get("/capabilities", (c) => c.json({ "auto-converge": false, "postcopy-ram": true }));
  app.get("/parameters", (c) => c.json({ "downtime-limit": 300, "max-cpu-throttle": 60 }));
  app.get("/machine", (c) => c.json({ runstate: "running", "ram-size": 256 * 2 ** 20 }));
  app.get("/openapi.json", (c) => c.json({}, 404));
  app.get("/events", (c) => {
    const from = Number(c.req.header("last-event-id") ?? "0");
    lastIds.push(c.req.header("last-event-id") ?? "");
    // The first connection ends after the first half: the page must reconnect.
    const upTo = from === 0 ? 5 : EVENTS.length;
    const text = EVENTS.slice(from, upTo).map(([event, data], i) =>
      `id: ${from + i + 1}\nevent: ${event}\ndata: ${JSON.stringify(data)}\n\n`
    ).join("");
    return c.body(text, 200, { "content-type": "text/event-stream", "cache-control": "no-store" });
  });
  return app;
}

Deno.test({
  name: "dashboard: x-convergence, policy events and reconnects, against a scripted agent",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const lastIds: string[] = [];
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      scriptedAgent(lastIds).fetch,
    );
    const base = `http://127.0.0.1:${server.addr.port}`;
    try {
      await withBrowser(async (ctx) => {
        const page = await ctx.newPage();
        const seen = watch(page, [404]); // this agent has no OpenAPI document
        await page.goto(`${base}/`);
        await page.locator("#log-body tr[data-event=MIGRATION_POLICY]").waitFor({
          timeout: 15_000,
        });
        assert.deepEqual(lastIds.slice(0, 2), ["0", "5"], "reconnected after the last id");
        await page.locator("#verdict", { hasText: "stalled" }).waitFor();
        assert.equal(await page.locator("#verdict").getAttribute("data-tone"), "warn");
        assert.match(String(await page.locator("#eta").textContent()), /12 s/);
        assert.equal(await page.locator("#suggestion").textContent(), CONVERGENCE.suggestion);
        const policy = page.locator("#log-body tr[data-event=MIGRATION_POLICY]");
        assert.equal(await policy.getAttribute("class"), "tone-policy");
        assert.match(String(await policy.textContent()), /stalled for 3 passes/);
        assert.equal(await page.locator("#status").textContent(), "active");
        assert.equal(await page.locator("#progress").getAttribute("data-pass"), "2");
        assert.equal(await page.locator("#passes li").count(), 2);
        assert.match(String(await page.locator("#downtime-verdict").textContent()), /too long/);
        assert.ok(await page.locator("#downtime-fill.over").count() === 1);
        assert.equal(await page.locator("#throttle").textContent(), "30 %");
        assert.equal(await page.locator("#throttle-max").textContent(), "60 %");
        assert.equal(await page.locator("#mbps").textContent(), "493 Mbit/s");
        await page.locator("#diagram .node.current.active").waitFor();
        await page.waitForTimeout(300);
        await saveScreenshot(page, "dashboard_convergence.png");
        assert.deepEqual(seen.errors, []);
        assert.deepEqual(seen.urls.filter((u) => new URL(u).origin !== base), []);
      });
    } finally {
      await server.shutdown();
    }
  },
});
