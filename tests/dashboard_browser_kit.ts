/**
 * Test kit for the dashboard's browser tests: headless Chromium from Debian on an empty
 * temporary profile, request and error recording, screenshots under tests/artifacts/.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";

const CHROMIUM = "/usr/bin/chromium";
const ARTIFACTS = new URL("./artifacts/", import.meta.url);
const FLAGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

/**
 * Runs `fn` with Chromium on an empty temporary profile (removed afterwards). A missing
 * Chromium is a failure with the fix in its message, never a silent skip.
 */
export async function withBrowser(fn: (ctx: BrowserContext) => Promise<void>): Promise<void> {
  try {
    await Deno.stat(CHROMIUM);
  } catch {
    throw new Error(
      `Chromium is missing at ${CHROMIUM}: install it with 'apt-get install -y chromium' ` +
        "(.ci/run installs it for CI); the dashboard browser tests cannot run without it",
    );
  }
  const profile = await Deno.makeTempDir({ prefix: "ferry-chromium-" });
  try {
    const ctx = await chromium.launchPersistentContext(profile, {
      executablePath: CHROMIUM,
      headless: true,
      args: ["--headless", ...FLAGS],
      viewport: { width: 1440, height: 1000 },
    });
    try {
      await fn(ctx);
    } finally {
      await ctx.close();
    }
  } finally {
    await Deno.remove(profile, { recursive: true });
  }
}

/**
 * Records every URL a page requests, and every script error and console error it
 * produces (a Content-Security-Policy refusal is one) except answers with `allowed`
 * status codes (a 401 before the token is pasted is expected).
 */
export function watch(page: Page, allowed: number[] = []): { urls: string[]; errors: string[] } {
  const seen = { urls: [] as string[], errors: [] as string[] };
  const expected = new RegExp(`status of (${allowed.join("|") || "-"}) `);
  page.on("request", (r) => void seen.urls.push(r.url()));
  page.on("pageerror", (e) => void seen.errors.push(String(e)));
  page.on("console", (m) => {
    if (m.type() === "error" && !expected.test(m.text())) seen.errors.push(m.text());
  });
  return seen;
}

/** Saves a full-page screenshot as tests/artifacts/`name`. */
export async function saveScreenshot(page: Page, name: string): Promise<void> {
  await Deno.mkdir(ARTIFACTS, { recursive: true });
  await page.screenshot({ path: new URL(name, ARTIFACTS).pathname, fullPage: true });
}
