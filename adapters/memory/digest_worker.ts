/**
 * Digest Worker: SHA-256 of every RAM block, off the main thread, with node:crypto (which
 * accepts views of a SharedArrayBuffer, unlike crypto.subtle) in 4 MiB chunks; and, when
 * asked, the increment check. Answers each request with one DigestResult, in order, and stays
 * for the next (a machine keeps one: starting a Worker with node:crypto costs ~70 ms of CPU).
 *
 * Mode `now` hashes RAM as it is (meaningful with the vCPU parked). Mode `snapshot` hashes RAM
 * as it was when the copy-on-first-write snapshot began (VcpuControl.beginSnapshot), while the
 * vCPU keeps running. Mode `check` hashes nothing (`blocks` is empty) and only runs the check.
 *
 * @module
 */

import { createHash, type Hash } from "node:crypto";
import { type SharedGuest, usedBytes } from "./guest_ram.ts";
import { type IncrementCheck, incrementCheck } from "./increment_check.ts";
import { PAGE_SIZE, type RamBlockLayout } from "./layout.ts";

/** What the digest Worker hashes: current RAM, the snapshot, or nothing (check only). */
export type DigestMode = "now" | "snapshot" | "check";

/** What the digest Worker is sent. */
export interface DigestRequest {
  guest: SharedGuest;
  /** Defaults to `now`. */
  mode?: DigestMode;
  /** Increment range to check (on current RAM), or null. */
  check: { start: number; end: number } | null;
}

/** What it answers (`GET /machine/digest`). */
export interface DigestResult {
  /** `used`: the bytes hashed, the block's used part (guest_ram.ts usedBytes). */
  blocks: { name: string; size: number; used: number; sha256: string }[];
  "x-increment-check"?: IncrementCheck;
  /** Which RAM was hashed: as it arrived by migration, or as it is now (set by Machine). */
  "x-taken"?: "arrival" | "now";
}

const CHUNK = 4 << 20;
const CHUNK_PAGES = CHUNK / PAGE_SIZE;

/** Hashes a block as it is. */
function hashNow(hash: Hash, ram: Uint8Array): void {
  for (let off = 0; off < ram.length; off += CHUNK) {
    hash.update(ram.subarray(off, Math.min(off + CHUNK, ram.length)));
  }
}

/**
 * Hashes a block as it was when the snapshot began, while the vCPU may be writing it.
 *
 * For each page p: if its mark is 1, the vCPU saved p into `snap` before its first write, so
 * `snap` holds p as it was. Else we copy p from RAM into `temp`, and then read the mark again;
 * if it is 1 now, the vCPU may have written p during our copy, so we take the saved copy
 * (complete: the vCPU copies, then marks). If it is still 0, the vCPU had not marked p when we
 * re-read, and it writes p only after marking it, so our copy is unmodified. A chunk is copied
 * from RAM first, then its marks are re-read page by page (same order per page).
 *
 * Memory ordering: a mark read as 1 by Atomics.load synchronises with the vCPU's atomic mark,
 * so the saved copy is visible. For a mark read as 0 a plain load would not order our earlier
 * RAM reads before the vCPU's later writes; so the second read is a read-modify-write
 * (Atomics.or with 0, which leaves the byte as it is): if it precedes the vCPU's
 * read-modify-write of the mark (Atomics.exchange in snapshotPage), that one reads our write,
 * which orders our RAM copy before the vCPU's writes.
 */
function hashSnapshot(
  hash: Hash,
  block: RamBlockLayout,
  ram: Uint8Array,
  snap: Uint8Array,
  copied: Uint8Array,
  temp: Uint8Array,
): void {
  for (let at = 0; at < block.pages; at += CHUNK_PAGES) {
    const pages = Math.min(CHUNK_PAGES, block.pages - at);
    const base = at * PAGE_SIZE;
    const bytes = pages * PAGE_SIZE;
    temp.set(ram.subarray(base, base + bytes));
    for (let i = 0, p = block.firstPage + at; i < pages; i++, p++) {
      const saved = Atomics.load(copied, p) === 1 || Atomics.or(copied, p, 0) === 1;
      if (saved) {
        const off = base + i * PAGE_SIZE;
        temp.set(snap.subarray(off, off + PAGE_SIZE), i * PAGE_SIZE);
      }
    }
    hash.update(temp.subarray(0, bytes));
  }
}

/** Computes the digest of a guest (synchronously; meant for a Worker). */
export function digestGuest({ guest, mode = "now", check }: DigestRequest): DigestResult {
  const ram = guest.ram.map((buf) => new Uint8Array(buf));
  const copied = new Uint8Array(guest.snapCopied);
  const temp = mode === "snapshot" ? new Uint8Array(CHUNK) : null;
  const blocks = mode === "check" ? [] : guest.layout.map((block, i) => {
    const hash = createHash("sha256");
    // The used part, as it is now (a WebAssembly guest's memory may grow meanwhile).
    const used = usedBytes(guest, i);
    const now = ram[i].subarray(0, used);
    if (temp === null) hashNow(hash, now);
    else {
      const part = { ...block, pages: used / PAGE_SIZE };
      hashSnapshot(hash, part, now, new Uint8Array(guest.snap[i]), copied, temp);
    }
    return { name: block.name, size: block.size, used, sha256: hash.digest("hex") };
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
};
