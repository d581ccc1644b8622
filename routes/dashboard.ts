/**
 * `GET /`: the live dashboard, and `GET /web/<file>`: its scripts, styles and icon, read
 * from the repository's `web/` directory (plain ES modules, no build step). Everything
 * the page loads comes from this agent: its Content-Security-Policy allows nothing else.
 * Mounted ahead of the bearer check: the page itself asks for the token when the agent
 * has one, and the API calls it makes carry it. Kept out of the OpenAPI document, which
 * describes the API.
 *
 * @module
 */
import { type Context, Hono } from "hono";
// The page's SSE parser is this package's browser build, served from its own files; the
// import makes sure they are installed wherever the agent runs.
import "eventsource-parser";

/** Where the dashboard's files live. */
export const WEB_DIR = new URL("../web/", import.meta.url);

/** The files of npm:eventsource-parser's build, served as `/web/vendor/eventsource-parser/`. */
const PARSER_DIR = new URL("./", import.meta.resolve("eventsource-parser"));

/** Content types by file extension; nothing else is served. */
export const CONTENT_TYPES: Readonly<Record<string, string>> = {
  html: "text/html; charset=utf-8",
  js: "text/javascript; charset=utf-8",
  css: "text/css; charset=utf-8",
  svg: "image/svg+xml",
};

/**
 * Same-origin only: scripts, styles, images, fetches and the event stream; the one inline
 * script allowed is the page's import map, by its hash.
 */
export function contentSecurityPolicy(importMapHash: string | null): string {
  return [
    "default-src 'none'",
    `script-src 'self'${importMapHash ? ` 'sha256-${importMapHash}'` : ""}`,
    "style-src 'self'",
    "img-src 'self'",
    "connect-src 'self'",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join("; ");
}

/** The base64 SHA-256 of the page's `<script type="importmap">` text, as CSP names it. */
async function importMapHash(html: Uint8Array): Promise<string | null> {
  const m = /<script type="importmap">([\s\S]*?)<\/script>/.exec(new TextDecoder().decode(html));
  if (!m) return null;
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(m[1]));
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

const FILE_NAME = /^[a-z0-9][a-z0-9_-]*\.([a-z]+)$/;

/**
 * Serves one file of `web/` with a validator, so a browser revalidates on every load
 * (`no-cache`) and gets a 304 when nothing changed. Undefined when there is no such file.
 */
async function serveFile(
  c: Context,
  name: string,
  dir: URL = WEB_DIR,
): Promise<Response | undefined> {
  const ext = FILE_NAME.exec(name)?.[1];
  const type = ext ? CONTENT_TYPES[ext] : undefined;
  if (!type) return undefined;
  const url = new URL(name, dir);
  let stat: Deno.FileInfo;
  try {
    stat = await Deno.stat(url);
  } catch {
    return undefined;
  }
  if (!stat.isFile) return undefined;
  const etag = `W/"${stat.size.toString(36)}-${(stat.mtime?.getTime() ?? 0).toString(36)}"`;
  const headers: Record<string, string> = {
    "content-type": type,
    "cache-control": "no-cache",
    "etag": etag,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
  };
  if (c.req.header("if-none-match") === etag && ext !== "html") {
    return c.body(null, 304, headers);
  }
  const bytes = await Deno.readFile(url);
  if (ext === "html") {
    headers["content-security-policy"] = contentSecurityPolicy(await importMapHash(bytes));
    if (c.req.header("if-none-match") === etag) return c.body(null, 304, headers);
  }
  return c.body(bytes as Uint8Array<ArrayBuffer>, 200, headers);
}

/**
 * The dashboard sub-app: `/`, `/web/<file>` and the SSE parser's files; any other name falls
 * through.
 */
export function dashboardRoutes(): Hono {
  const app = new Hono();
  app.get("/", async (c, next) => (await serveFile(c, "index.html")) ?? await next());
  app.get("/web/vendor/eventsource-parser/:file", async (c, next) => {
    return (await serveFile(c, c.req.param("file"), PARSER_DIR)) ?? await next();
  });
  app.get("/web/:file", async (c, next) => {
    return (await serveFile(c, c.req.param("file"))) ?? await next();
  });
  return app;
}
