/**
 * DNS rebinding and cross-site requests: every request but the open paths (`/healthz`)
 * must name the agent in its Host (routes/api_access.ts decides which names), and a
 * request a browser sends for another site is refused: an `Origin` other than the agent's
 * own, or (for a request without Origin that is not a navigation) `Sec-Fetch-Site`
 * `cross-site` / `same-site`. Refusals are 403 problem+json naming the header.
 *
 * A rebinding page's requests carry its own name in Host (`evil.example`), which names no
 * address the agent listens on; a page of another origin (another port included) shows in
 * Origin. The agent's own origin is the request's scheme-independent `host:port`: the
 * dashboard's same-origin requests, and a TLS-terminating proxy's, carry it.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { hostAllowed, type HostNames } from "./api_access.ts";
import { problem } from "./problem.ts";

const DEFAULT_PORT: Record<string, string> = { "http:": "80", "https:": "443" };

/** Clips a header value quoted back in an error text. */
function quote(value: string): string {
  return value.length > 80 ? `${value.slice(0, 80)}...` : value;
}

/**
 * True when `origin` is the origin the request was made to (same host and port; http or
 * https, so a TLS-terminating proxy in front of a plain agent still works). `null` and
 * anything that is not an http(s) origin are foreign.
 */
export function isOwnOrigin(origin: string, requestUrl: URL): boolean {
  let o: URL;
  try {
    o = new URL(origin);
  } catch {
    return false;
  }
  const defaultPort = DEFAULT_PORT[o.protocol];
  const bare = o.pathname === "/" && o.search === "" && o.hash === "" && o.username === "" &&
    o.password === "";
  if (defaultPort === undefined || !bare) return false;
  return o.hostname === requestUrl.hostname &&
    (o.port || defaultPort) === (requestUrl.port || defaultPort);
}

/** The refusal for `c`, or null when the request may go on. */
export function refusal(c: Context, allowed: HostNames): Response | null {
  const url = new URL(c.req.url);
  if (!hostAllowed(allowed, url.hostname)) {
    const host = c.req.header("host") ?? url.host;
    return problem(
      c,
      403,
      `Host '${quote(host)}' does not name this agent (a DNS rebinding page would send ` +
        "its own name); use the address it listens on, or start it with --api-host NAME",
    );
  }
  const origin = c.req.header("origin");
  if (origin !== undefined && !isOwnOrigin(origin, url)) {
    return problem(
      c,
      403,
      `Origin '${quote(origin)}' is not this agent's origin: cross-site requests are refused`,
    );
  }
  const site = c.req.header("sec-fetch-site");
  if (
    origin === undefined && (site === "cross-site" || site === "same-site") &&
    c.req.header("sec-fetch-mode") !== "navigate"
  ) {
    return problem(
      c,
      403,
      `Sec-Fetch-Site '${site}': requests another site's page makes are refused`,
    );
  }
  return null;
}

/** Middleware refusing foreign Host, Origin and Sec-Fetch-Site on every path but `open`. */
export function hostGuard(
  allowed: HostNames,
  open: readonly string[] = ["/healthz"],
): MiddlewareHandler {
  return async (c, next) => {
    if (open.includes(c.req.path)) return await next();
    return refusal(c, allowed) ?? await next();
  };
}
