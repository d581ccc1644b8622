/**
 * Helpers for the channel tests: deterministic data, hashing a stream, pumping bytes.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import type { Channel } from "../domain/ports.ts";
import { concat } from "./helpers/bytes.ts";

/** `size` pseudo-random bytes from a xorshift32 seeded with `seed` (never all zero). */
export function pseudoRandomBytes(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = (seed >>> 0) || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** SHA-256 hex of the concatenation of `parts`. */
export function sha256(...parts: Uint8Array[]): string {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest("hex");
}

/** Reads `channel` to end of stream; resolves to the byte count and SHA-256 hex. */
export async function drainAndHash(
  channel: Channel,
  bufSize = 256 * 1024,
): Promise<{ bytes: number; hash: string }> {
  const buf = new Uint8Array(bufSize);
  const h: Hash = createHash("sha256");
  let bytes = 0;
  for (;;) {
    const n = await channel.read(buf);
    if (n === null) break;
    h.update(buf.subarray(0, n));
    bytes += n;
  }
  return { bytes, hash: h.digest("hex") };
}

/** Reads `channel` to end of stream into one array. */
export async function readAll(channel: Channel): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  const buf = new Uint8Array(64 * 1024);
  for (;;) {
    const n = await channel.read(buf);
    if (n === null) break;
    parts.push(buf.slice(0, n));
  }
  return concat(parts);
}

/** Resolves after `ms` real milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Resolves to "timeout" if `p` has not settled within `ms`; clears its timer either way. */
export async function within<T>(p: Promise<T>, ms: number): Promise<T | "timeout"> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const t = new Promise<"timeout">((resolve) => {
    timer = setTimeout(() => resolve("timeout"), ms);
  });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}
