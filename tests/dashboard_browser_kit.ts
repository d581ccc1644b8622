/**
 * Test kit for the dashboard's browser tests: headless Chromium on an empty temporary profile, request and error recording, screenshots under tests/artifacts/.
 *
 * @module
 */
import { type BrowserContext, chromium, type Page } from "playwright-core";
import { findBrowser } from "./helpers/browser.ts";

const ARTIFACTS = new URL("./artifacts/", import.meta.url);

/**
 * Runs `fn` with Chromium on an empty temporary profile (removed afterwards). The browser is
 * the system's or the one an npm package ships (tests/helpers/browser.ts); one that cannot
 * start is a failure saying why, never a silent skip.
 */
export async function withBrowser(fn: (ctx: BrowserContext) => Promise<void>): Promise<void> {
  const browser = await findBrowser();
  const profile = await Deno.makeTempDir({ prefix: "ferry-chromium-" });
  try {
    let ctx: BrowserContext;
    try {
      ctx = await chromium.launchPersistentContext(profile, {
        executablePath: browser.executablePath,
        headless: true,
        args: browser.args,
        env: { ...Deno.env.toObject(), ...browser.env },
        viewport: { width: 1440, height: 1000 },
      });
    } catch (e) {
      const first = String((e as Error).message).split("\n")[0];
      throw new Error(
        `Chromium (${browser.source}, ${browser.executablePath}) did not start: ${first}`,
      );
    }
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
 * Runs `fn` (one test of several sharing a browser from {@link withBrowser}) and then closes
 * every page it left open, so the next test starts with none. One context serves them all:
 * the packaged Chromium runs in a single process, where closing a context ends the browser.
 * The tests' agents listen on ports of their own, so no two tests share an origin's storage.
 */
export async function withPages(
  ctx: BrowserContext,
  fn: (ctx: BrowserContext) => Promise<void>,
): Promise<void> {
  try {
    await fn(ctx);
  } finally {
    await Promise.all(ctx.pages().map((p) => p.close()));
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
