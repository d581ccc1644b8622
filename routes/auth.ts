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

/** The length of every value the check compares: a SHA-256 digest. */
export const TOKEN_DIGEST_BYTES = 32;

/** A token's SHA-256 digest: what is compared, never the token itself. */
export function tokenDigest(text: string): Uint8Array {
  return createHash("sha256").update(text).digest();
}

/**
 * Whether `presented` is the token whose digest is `want`: `timingSafeEqual` over two
 * {@link TOKEN_DIGEST_BYTES}-byte digests, so the comparison never depends on the secret's
 * length or on how much of it the presented token matches (a raw comparison would first have
 * to compare lengths; `timingSafeEqual` throws on unequal ones). Only hashing the presented
 * token takes longer when it is longer, which tells the sender nothing it did not know.
 */
export function tokenMatches(presented: string, want: Uint8Array): boolean {
  return timingSafeEqual(tokenDigest(presented), want);
}

/** Middleware requiring the bearer `token` on every path except `open`. */
export function bearerAuth(
  token: string,
  open: readonly string[] = ["/healthz"],
): MiddlewareHandler {
  const want = tokenDigest(token);
  return async (c, next) => {
    if (open.includes(c.req.path)) return await next();
    const m = /^Bearer[ ]+(\S+)\s*$/i.exec(c.req.header("authorization") ?? "");
    if (m && tokenMatches(m[1], want)) return await next();
    c.header("WWW-Authenticate", 'Bearer realm="ferry"');
    return problem(
      c,
      401,
      m ? "Invalid API token" : "Authentication required: send Authorization: Bearer TOKEN",
    );
  };
}
