/**
 * `--api-token`: every request but the open paths (`/healthz`) must carry
 * `Authorization: Bearer TOKEN`. The comparison is constant-time over SHA-256 digests, so
 * neither the token's length nor its prefix leaks through timing.
 *
 * @module
 */
import { createHash, timingSafeEqual } from "node:crypto";
import type { MiddlewareHandler } from "hono";
import { problem } from "./problem.ts";

function digest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/** Middleware requiring the bearer `token` on every path except `open`. */
export function bearerAuth(
  token: string,
  open: readonly string[] = ["/healthz"],
): MiddlewareHandler {
  const want = digest(token);
  return async (c, next) => {
    if (open.includes(c.req.path)) return await next();
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (m && timingSafeEqual(digest(m[1]), want)) return await next();
    c.header("WWW-Authenticate", 'Bearer realm="ferry"');
    return problem(
      c,
      401,
      m ? "Invalid API token" : "Authentication required: send Authorization: Bearer TOKEN",
    );
  };
}
