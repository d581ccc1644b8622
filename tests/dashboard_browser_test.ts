/**
 * Issue 7: the dashboard in a real headless Chromium. Two real agents; the page edits a
 * parameter (and shows a refusal inline), starts the migration with its own button,
 * its progress bar moves, its status reaches `completed` on both sides, and it never
 * asks any host but its agent for anything. Screenshots go to tests/artifacts/. Then the page
 * against a scripted agent (dashboard_converging.ts), in the same browser.
 */
import assert from "node:assert/strict";
import type { BrowserContext, Page } from "playwright-core";
import { type Json, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent, startLocalAgents } from "./helpers/local_agent.ts";
import { recordEvents } from "./helpers/sse.ts";
import { saveScreenshot, watch, withBrowser, withPages } from "./dashboard_browser_kit.ts";
import { convergingAfterPolicy } from "./dashboard_converging.ts";

/** The bar's value and pass, read together (one render never splits them). */
function progressValue(page: Page): Promise<{ value: number; pass: string }> {
  return page.locator("#progress").evaluate((bar) => ({
    value: Number(bar.getAttribute("aria-valuenow")),
    pass: bar.getAttribute("data-pass") ?? "",
  }));
}

/** The page migrates a guest with its own buttons and follows both sides. */
async function migratesWithItsButtons(ctx: BrowserContext): Promise<void> {
  await withAgents(async (track) => {
    // A small guest sent slowly: each pass lasts seconds, long enough for the bar to move
    // several times before the page's postcopy button acts.
    const [dst, src] = await startLocalAgents(
      track,
      ["--ram", "32M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "32M", "--fill", "random", "--workload", "increment"],
    );
    await withPages(ctx, async (ctx) => {
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
      await page.fill("#param-max-bandwidth", String(16 << 20));
      await page.press("#param-max-bandwidth", "Enter");
      await page.locator("#param-max-bandwidth-note.ok").waitFor();
      assert.equal((await src.api("GET", "/parameters")).body["max-bandwidth"], 16 << 20);

      // Postcopy on, from the page; the destination measures its vCPU's page waits.
      await page.check("#cap-postcopy-ram");
      await page.locator("#cap-postcopy-ram-note.ok").waitFor();
      assert.equal((await src.api("GET", "/capabilities")).body["postcopy-ram"], true);
      await dst.api("PATCH", "/capabilities", { "postcopy-blocktime": true });

      // Start with the page's own button and watch the bar move. This guest dirties
      // memory faster than 16 MiB/s, so once a second pass has begun the page's
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
      // A migration that never entered COLO has no COLO card (tests/unit/dashboard_colo.ts).
      assert.equal(await page.locator("#colo-card").isHidden(), true, "a COLO card");
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
          : /^2 MiB pages: \d+(\.\d+)? MiB of 32 MiB$/,
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
  });
}

/** With --api-token the page loads openly and asks for the token. */
async function asksForTheToken(ctx: BrowserContext): Promise<void> {
  const agent = await startLocalAgent(["--ram", "4M", "--api-token", "dash-token"]);
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
    await withPages(ctx, async (ctx) => {
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
}

/** The times (`time` members) of an agent's MIGRATION events so far, replayed from id 0. */
async function migrationEventTimes(base: string, id: string): Promise<string[]> {
  const rec = await recordEvents(base, "0");
  try {
    await rec.waitFor((e) => e.event === "MIGRATION" && (e.data as Json).status === "completed");
    return rec.events.filter((e) => e.event === "MIGRATION" && (e.data as Json).id === id)
      .map((e) => (e.data as Json).time);
  } finally {
    await rec.close();
  }
}

/** A stalled migration shows no 100 %, no ETA, no fit; raised, it finishes. */
async function stalledThenRaised(ctx: BrowserContext): Promise<void> {
  await withAgents(async (track) => {
    // 14 MiB rewritten all the time, sent at 16 MiB/s: every pass leaves ~14 MiB, far
    // above the 4.8 MiB that 300 ms at 16 MiB/s can send at switchover.
    const [dst, src] = await startLocalAgents(
      track,
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", "--workload", "increment,start=1M,end=15M"],
    );
    await src.api("PATCH", "/parameters", { "max-bandwidth": 16 << 20, "downtime-limit": 300 });
    await withPages(ctx, async (ctx) => {
      // The destination's page while its guest arrives offers nothing outgoing, and its URI
      // field names no address (it used to read like its own incoming URI, prefilled).
      const dstPage = await ctx.newPage();
      const dstSeen = watch(dstPage);
      await dstPage.goto(`${dst.base}/`);
      await dstPage.locator("#guest-runstate", { hasText: "inmigrate" }).waitFor();
      await dstPage.locator("#btn-start").waitFor({ state: "hidden" });
      assert.equal(await dstPage.inputValue("#uri"), "");
      const port = dst.incomingUri!.split(":").at(-1)!;
      assert.ok(!(await dstPage.getAttribute("#uri", "placeholder"))!.includes(port));
      assert.ok(await dstPage.locator("#btn-incoming").isVisible());

      const page = await ctx.newPage();
      const seen = watch(page);
      await page.goto(`${src.base}/`);
      await page.locator("#conn[data-state=live]").waitFor({ timeout: 15_000 });
      await page.fill("#uri", dst.incomingUri!);
      await page.click("#btn-start");
      const bar = page.locator("#progress");
      await page.locator("#progress[data-state=stalled], #progress[data-state=not-converging]")
        .waitFor({ timeout: 60_000 });
      // For a while: what is left is what it says, never 100 %, no ETA, no green light.
      for (let i = 0; i < 10; i++) {
        const state = await bar.getAttribute("data-state");
        if (state === "stalled" || state === "not-converging") {
          const pct = Number(await bar.getAttribute("aria-valuenow"));
          assert.ok(pct < 100, `${pct} % while stalled`);
          assert.match(String(await page.locator("#progress-eta").textContent()), /^none: /);
          assert.match(String(await page.locator("#eta").textContent()), /^no ETA: /);
          assert.equal(
            await page.locator("#downtime-verdict").getAttribute("data-fits"),
            "too-long",
          );
          assert.match(String(await page.locator("#suggestion").textContent()), /./);
        }
        await page.waitForTimeout(150);
      }
      // Its verdicts in the log read as sentences; the axis ticks all differ.
      const verdicts = page.locator("#log-body tr[data-event=MIGRATION_CONVERGENCE]");
      await verdicts.first().waitFor();
      for (const row of await verdicts.all()) {
        const text = String(await row.locator("td").nth(3).textContent());
        assert.match(text, /^verdict [a-z-]+/);
        assert.ok(!text.includes("{"), text);
      }
      const ticks = String(await page.locator("#chart").getAttribute("data-dirty-ticks"));
      assert.equal(new Set(ticks.split("|")).size, ticks.split("|").length, ticks);
      await page.waitForTimeout(300);
      await saveScreenshot(page, "dashboard_stalled.png");

      // Raised from the page, the bandwidth carries it over.
      await page.fill("#param-max-bandwidth", String(2 ** 30));
      await page.press("#param-max-bandwidth", "Enter");
      await page.locator("#param-max-bandwidth-note.ok").waitFor();
      await page.locator("#status", { hasText: "completed" }).waitFor({ timeout: 60_000 });
      await page.locator("#progress[data-state=completed]").waitFor();
      assert.equal(await page.locator("#progress-pct").textContent(), "100.0 %");
      await page.locator("#verdict", { hasText: "completed" }).waitFor();
      await page.locator("#eta", { hasText: /^switched over after \d+ passes, guest paused/ })
        .waitFor();
      assert.equal(await page.locator("#switchover-note").isVisible(), false);
      assert.match(
        String(await page.locator("#downtime-verdict").textContent()),
        /^guest paused (within|longer than) the limit$/,
      );
      await page.waitForTimeout(300);
      await saveScreenshot(page, "dashboard_finished.png");

      // A page opened now replays the events: each row shows the event's own time.
      const id = (await src.api("GET", "/migrations/current")).body["x-id"];
      const times = await migrationEventTimes(src.base, id);
      assert.equal(times.length, 3, "setup, active, completed");
      const loaded = Date.now();
      const late = await ctx.newPage();
      const lateSeen = watch(late);
      await late.goto(`${src.base}/`);
      const rows = late.locator("#log-body tr[data-event=MIGRATION] time");
      for (let i = 0; i < 150 && (await rows.count()) < 3; i++) await late.waitForTimeout(100);
      const shown = await rows.evaluateAll((ts) =>
        ts.map((t) => [t.getAttribute("datetime"), t.getAttribute("data-source")])
      );
      assert.deepEqual(shown.map(([t]) => t).sort(), [...times].sort());
      assert.ok(shown.every(([, source]) => source === "agent"));
      assert.ok(times.every((t) => Date.parse(t) < loaded), "the events' times, not the load's");

      // After the end the destination's page says something true.
      await dstPage.locator("#status", { hasText: "completed" }).waitFor({ timeout: 15_000 });
      await dstPage.locator("#switchover-note", { hasText: "runs here now" }).waitFor();
      assert.ok(await dstPage.locator("#btn-start").isVisible(), "the guest may move on");

      // /docs's "Try it out" goes to the agent serving it.
      const docs = await ctx.newPage();
      await docs.goto(`${src.base}/docs`);
      const server = docs.locator(".servers select");
      await server.waitFor({ timeout: 15_000 });
      assert.equal(await server.inputValue(), src.base);
      await docs.locator("#operations-service-healthz .opblock-summary").click();
      await docs.locator("#operations-service-healthz .try-out__btn").click();
      const asked = docs.waitForRequest((r) => r.url().endsWith("/healthz"));
      await docs.locator("#operations-service-healthz .execute").click();
      assert.equal(new URL((await asked).url()).origin, src.base);

      assert.deepEqual([...seen.errors, ...dstSeen.errors, ...lateSeen.errors], []);
    });
  });
}

Deno.test({
  name: "dashboard in a real Chromium (one browser for all steps)",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: (t) =>
    withBrowser(async (ctx) => {
      await t.step("the page migrates a guest with its own buttons and follows both sides", () =>
        migratesWithItsButtons(ctx));
      await t.step("with --api-token the page loads openly and asks for the token", () =>
        asksForTheToken(ctx));
      await t.step("a stalled migration shows no 100 %, no ETA, no fit; raised, it finishes", () =>
        stalledThenRaised(ctx));
      await t.step(
        "a long migration converging after its policy fired, against a scripted agent",
        () =>
          convergingAfterPolicy(ctx),
      );
    }),
});
