/**
 * `--api-token`: every request but the open paths (`/healthz`) must carry
 * `Authorization: Bearer TOKEN`. The comparison is constant-time over SHA-256 digests, so
 * neither the token's length nor its prefix leaks through timing.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { problem } from "./problem.ts";

/** The length of every value the check compares: a SHA-256 digest. */
export const TOKEN_DIGEST_BYTES = 32;

/**
 * A token's SHA-256 digest (Web Crypto: node:crypto would cost every agent start ~25 ms of CPU
 * to load): what is compared, never the token itself.
 */
export async function tokenDigest(text: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)));
}

/** Whether two digests are equal, looking at every byte whatever the first difference. */
function sameDigest(a: Uint8Array, b: Uint8Array): boolean {
  if (a.byteLength !== TOKEN_DIGEST_BYTES || b.byteLength !== TOKEN_DIGEST_BYTES) return false;
  let diff = 0;
  for (let i = 0; i < TOKEN_DIGEST_BYTES; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/**
 * Whether `presented` is the token whose digest is `want`: every byte of two
 * {@link TOKEN_DIGEST_BYTES}-byte digests is compared, without stopping at the first
 * difference, so the comparison never depends on the secret's length or on how much of it
 * the presented token matches (a raw comparison would first compare lengths). Only hashing
 * the presented token takes longer when it is longer, which tells the sender nothing it did
 * not know.
 */
export async function tokenMatches(presented: string, want: Uint8Array): Promise<boolean> {
  return sameDigest(await tokenDigest(presented), want);
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
    if (m && await tokenMatches(m[1], await want)) return await next();
    c.header("WWW-Authenticate", 'Bearer realm="ferry"');
    return problem(
      c,
      401,
      m ? "Invalid API token" : "Authentication required: send Authorization: Bearer TOKEN",
    );
  };
}
