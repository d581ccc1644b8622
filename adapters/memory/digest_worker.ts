/**
 * Short-lived digest Worker: SHA-256 of every RAM block, off the main thread, with node:crypto
 * (which accepts views of a SharedArrayBuffer, unlike crypto.subtle) in 4 MiB chunks; and,
 * when asked, the increment check. Posts one DigestResult and closes.
 *
 * @module
 */

import { createHash } from "node:crypto";
import type { SharedGuest } from "./guest_ram.ts";
import { type IncrementCheck, incrementCheck } from "./increment_check.ts";

/** What the digest Worker is sent. */
export interface DigestRequest {
  guest: SharedGuest;
  /** Increment range to check, or null. */
  check: { start: number; end: number } | null;
}

/** What it answers (`GET /machine/digest`). */
export interface DigestResult {
  blocks: { name: string; size: number; sha256: string }[];
  "x-increment-check"?: IncrementCheck;
}

const CHUNK = 4 << 20;

/** Computes the digest of a guest (synchronously; meant for a Worker). */
export function digestGuest({ guest, check }: DigestRequest): DigestResult {
  const ram = guest.ram.map((buf) => new Uint8Array(buf));
  const blocks = guest.layout.map((block, i) => {
    const hash = createHash("sha256");
    for (let off = 0; off < block.size; off += CHUNK) {
      const n = Math.min(CHUNK, block.size - off);
      hash.update(ram[i].subarray(off, off + n));
    }
    return { name: block.name, size: block.size, sha256: hash.digest("hex") };
  });
  const result: DigestResult = { blocks };
  if (check !== null) {
    result["x-increment-check"] = incrementCheck(guest.layout, ram, check.start, check.end);
  }
  return result;
}

interface WorkerScope {
  onmessage: ((e: MessageEvent<DigestRequest>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e) => {
  scope.postMessage(digestGuest(e.data));
  scope.close();
};
