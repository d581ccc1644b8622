/**
 * Issue 7: the dashboard in a real headless Chromium. Two real agents; the page edits a
 * parameter (and shows a refusal inline), starts the migration with its own button,
 * its progress bar moves, its status reaches `completed` on both sides, and it never
 * asks any host but its agent for anything. Screenshots go to tests/artifacts/.
 */
import assert from "node:assert/strict";
import type { Page } from "playwright-core";
import { type AgentProcess, startAgent } from "./helpers/agent_process.ts";
import { saveScreenshot, watch, withBrowser } from "./dashboard_browser_kit.ts";

/** The bar's value and pass, read together (one render never splits them). */
function progressValue(page: Page): Promise<{ value: number; pass: string }> {
  return page.locator("#progress").evaluate((bar) => ({
    value: Number(bar.getAttribute("aria-valuenow")),
    pass: bar.getAttribute("data-pass") ?? "",
  }));
}

Deno.test({
  name: "dashboard: the page migrates a guest with its own buttons and follows both sides",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const agents: AgentProcess[] = [];
    try {
      const dst = await startAgent(["--ram", "256M", "--incoming", "tcp:127.0.0.1:0"]);
      agents.push(dst);
      const src = await startAgent([
        "--ram",
        "256M",
        "--fill",
        "random",
        "--workload",
        "increment",
      ]);
      agents.push(src);
      await withBrowser(async (ctx) => {
        const page = await ctx.newPage();
        const seen = watch(page, [400]); // the refused PATCH below
        await page.goto(`${src.base}/`);
        await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
        assert.equal(await page.locator("#status").textContent(), "none");
        assert.equal(await page.locator("#caps-body input[type=checkbox]").count(), 16);

        // Parameters are edited in place; a refusal shows the agent's text on the row.
        await page.fill("#param-downtime-limit", "2000001");
        await page.press("#param-downtime-limit", "Enter");
        const refusal = page.locator("#param-downtime-limit-note.error");
        await refusal.waitFor();
        assert.match(String(await refusal.textContent()), /downtime_limit.*0 to 2000000/);
        assert.equal((await src.api("GET", "/parameters")).body["downtime-limit"], 300);
        await page.press("#param-downtime-limit", "Escape");
        assert.equal(await page.inputValue("#param-downtime-limit"), "300");
        assert.equal(await page.locator("#param-downtime-limit-note").textContent(), "");
        await page.fill("#param-max-bandwidth", String(64 << 20));
        await page.press("#param-max-bandwidth", "Enter");
        await page.locator("#param-max-bandwidth-note.ok").waitFor();
        assert.equal((await src.api("GET", "/parameters")).body["max-bandwidth"], 64 << 20);

        // Postcopy on, from the page; the destination measures its vCPU's page waits.
        await page.check("#cap-postcopy-ram");
        await page.locator("#cap-postcopy-ram-note.ok").waitFor();
        assert.equal((await src.api("GET", "/capabilities")).body["postcopy-ram"], true);
        await dst.api("PATCH", "/capabilities", { "postcopy-blocktime": true });

        // Start with the page's own button and watch the bar move. This guest dirties
        // memory faster than 64 MiB/s, so once a second pass has begun the page's
        // postcopy button finishes the job.
        await page.fill("#uri", dst.incomingUri!);
        await page.click("#btn-start");
        const values: number[] = [];
        let increases = 0;
        let postcopy = false;
        let last = { value: -1, pass: "" };
        const deadline = Date.now() + 120_000;
        while ((await page.locator("#status").textContent()) !== "completed") {
          assert.ok(Date.now() < deadline, `no completion; bar values ${values.join(", ")}`);
          assert.notEqual(await page.locator("#status").textContent(), "failed");
          const now = await progressValue(page);
          if (now.pass === last.pass && now.value < last.value) {
            assert.fail(
              `the bar ran backwards within pass ${now.pass}: ${last.value} → ${now.value}`,
            );
          }
          if (now.pass === last.pass && now.value > last.value) increases++;
          if (now.value !== last.value) values.push(now.value);
          last = now;
          if (!postcopy && increases >= 3 && Number(now.pass) >= 2) {
            await page.click("#btn-postcopy");
            postcopy = true;
          }
          await page.waitForTimeout(100);
        }
        assert.ok(increases >= 2, `the bar moved ${increases} times: ${values.join(", ")}`);
        assert.equal((await progressValue(page)).value, 100);
        assert.equal((await src.api("GET", "/migrations/current")).body.status, "completed");
        // The state diagram highlights the current state; the log has the transitions.
        await page.locator("#diagram .node.current.completed").waitFor();
        await page.locator("#log-body tr[data-event=MIGRATION]").first().waitFor();
        await page.waitForTimeout(400);
        await saveScreenshot(page, "dashboard.png");

        // The destination's own page shows the incoming side, completed.
        const dstPage = await ctx.newPage();
        const dstSeen = watch(dstPage);
        await dstPage.goto(`${dst.base}/`);
        await dstPage.locator("#status", { hasText: "completed" }).waitFor({ timeout: 15_000 });
        assert.match(String(await dstPage.locator("#side").textContent()), /destination/);
        assert.equal(await dstPage.locator("#incoming-status").textContent(), "completed");
        await dstPage.locator("#guest-runstate", { hasText: "running" }).waitFor();
        // The pages behind its RAM, as GET /machine's x-ram-backing says.
        const backing = (await dst.api("GET", "/machine")).body["x-ram-backing"];
        assert.match(
          String(await dstPage.locator("#guest-ram-pages").textContent()),
          backing["page-size"] === 4096
            ? /^4 KiB pages \(huge pages auto\)$/
            : /^2 MiB pages: \d+(\.\d+)? MiB of 256 MiB$/,
        );
        // Postcopy page faults on the destination: the vCPU's total wait for pages.
        await dstPage.locator("#blocktime", { hasText: / m?s$/ }).waitFor();
        // Both diagrams trace the same path (postcopy-active when the button won the race
        // against precopy converging on its own).
        const trace = (p: Page) =>
          p.locator("#diagram .node.visited, #diagram .node.current").evaluateAll((nodes) =>
            nodes.map((n) => n.getAttribute("data-state"))
          );
        // The destination's page learns its path from the replayed events: wait for them.
        const want = await trace(page);
        for (
          let i = 0;
          i < 100 && JSON.stringify(await trace(dstPage)) !== JSON.stringify(want);
          i++
        ) {
          await dstPage.waitForTimeout(100);
        }
        assert.deepEqual(await trace(dstPage), want);
        assert.ok((await trace(page)).includes("active"));
        await saveScreenshot(dstPage, "dashboard_destination.png");

        const origins = new Set([src.base, dst.base]);
        const foreign = [...seen.urls, ...dstSeen.urls].filter((u) =>
          !origins.has(new URL(u).origin)
        );
        assert.deepEqual(foreign, [], "the page asked another host");
        assert.ok(seen.urls.some((u) => u.endsWith("/events")), "it followed /events");
        assert.deepEqual([...seen.errors, ...dstSeen.errors], []);
      });
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
    }
  },
});

Deno.test({
  name: "dashboard: with --api-token the page loads openly and asks for the token",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const agent = await startAgent(["--ram", "4M", "--api-token", "dash-token"]);
    try {
      const page = await fetch(`${agent.base}/`);
      assert.equal(page.status, 200);
      assert.match(page.headers.get("content-type") ?? "", /^text\/html/);
      assert.match(page.headers.get("content-security-policy") ?? "", /default-src 'none'/);
      await page.body?.cancel();
      const script = await fetch(`${agent.base}/web/app.js`);
      assert.equal(script.status, 200);
      assert.match(script.headers.get("content-type") ?? "", /^text\/javascript/);
      const etag = script.headers.get("etag") ?? "";
      await script.body?.cancel();
      const again = await fetch(`${agent.base}/web/app.js`, { headers: { "if-none-match": etag } });
      assert.equal(again.status, 304);
      await again.body?.cancel();
      for (const path of ["/web/missing.js", "/web/..%2fdeno.json", "/events"]) {
        const r = await fetch(agent.base + path);
        assert.equal(r.status, 401, path);
        await r.body?.cancel();
      }
      await withBrowser(async (ctx) => {
        const tab = await ctx.newPage();
        const seen = watch(tab, [401]);
        await tab.goto(`${agent.base}/`);
        await tab.locator("#token-dialog[open]").waitFor();
        await tab.fill("#token-input", "dash-token");
        await tab.click("#token-form button[type=submit]");
        await tab.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
        assert.equal(await tab.locator("#status").textContent(), "none");
        assert.equal(await tab.locator("#caps-body input[type=checkbox]").count(), 16);
        await tab.locator("#guest-runstate", { hasText: "running" }).waitFor();
        assert.deepEqual(seen.errors, []);
      });
    } finally {
      await agent.stop();
    }
  },
});
