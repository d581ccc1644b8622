/**
 * The vCPU's workloads as step functions: each runs a bounded number of page writes against
 * plain typed-array views of guest RAM and the dirty byte map, advancing the registers.
 * Pure apart from the views and registers they are given, so tests drive them without Workers.
 *
 * @module
 */

import { blockIndexOfPage, PAGE_SIZE, type RamBlockLayout } from "./layout.ts";

/** The workload kinds of `--workload`. */
export type WorkloadKind = "idle" | "increment" | "random";

/** A parsed `--workload`. Increment bounds left undefined take their defaults against the RAM. */
export type WorkloadSpec =
  | { kind: "idle" }
  | { kind: "increment"; start?: number; end?: number; rate?: number; disk?: number }
  | { kind: "random"; rate: number; hot: number; disk?: number; clock?: boolean };

/** Workload kinds in the order of their numeric codes (device state, ctl block). */
export const WORKLOAD_KINDS: readonly WorkloadKind[] = ["idle", "increment", "random"];

/**
 * The vCPU's registers: everything the workload needs to continue exactly where it stopped.
 * Addresses are byte offsets in the flat guest address space (page-aligned).
 */
export interface WorkloadRegs {
  kind: WorkloadKind;
  /** Increment: the range was zeroed once ("boot"); a restored vCPU does not boot again. */
  booted: boolean;
  /** Increment range [start, end); 0 and 0 for other kinds. */
  start: number;
  end: number;
  /** Increment: address of the next page to touch (boot walk too). 0 for other kinds. */
  cursor: number;
  /** Increment: completed walks over the range after boot. */
  passes: number;
  /** Pages written so far (boot included). */
  pagesWritten: number;
  /** Random: pages per second. 0 for other kinds. */
  rate: number;
  /** Random: hot fraction of the flat page space, (0, 1]. 0 for other kinds. */
  hot: number;
  /** xorshift128 state, four uint32 words, not all zero. */
  prng: number[];
  /** The seq the guest's next output record gets (from 1 over its whole life). */
  nextSeq: number;
  /** Random with `clock=on`: its output records carry the host's clock (two copies differ). */
  clock: boolean;
}

/** The views a step works on. `fault` is an out-cell: set by a step, read by its caller. */
export interface GuestMemory {
  layout: readonly RamBlockLayout[];
  /** One byte view per block. */
  bytes: readonly Uint8Array[];
  /** One uint32 view per block (same buffers). */
  words: readonly Uint32Array[];
  /** Dirty log: one byte per flat page. */
  dirty: Uint8Array;
  /** Postcopy: when set, a page must be marked received (non-zero) before it is touched. */
  received: Uint8Array | null;
  /**
   * Snapshot on: one byte view per block of `SharedGuest.snap`; before its first write to a
   * page whose `snapCopied` byte is 0, a step saves the page there (see snapshotPage). Null: off.
   */
  snap: readonly Uint8Array[] | null;
  /** One byte per flat page: 1 = the page is saved in `snap`. */
  snapCopied: Uint8Array;
  /** Pages in the flat page space. */
  totalPages: number;
  /** Set by a step: the missing page it stopped before (postcopy), or -1. */
  fault: number;
  /** Set by a step: the output records it wrote (their text); the caller numbers and drains them. */
  out: string[];
}

/**
 * Copy-on-first-write: saves page `page` (at byte `off` of its block, views `ram` and `snap`)
 * into the snapshot, then marks it copied. The step writes the page only after this returns,
 * so a reader that finds the mark 0 after copying the page from RAM has an unmodified copy.
 * The mark is a read-modify-write, not a plain store: a reader's read-modify-write of the
 * same byte that this one reads from then orders the reader's RAM copy before our writes
 * (see digest_worker.ts).
 */
export function snapshotPage(
  ram: Uint8Array,
  snap: Uint8Array,
  snapCopied: Uint8Array,
  page: number,
  off: number,
): void {
  snap.set(ram.subarray(off, off + PAGE_SIZE), off);
  Atomics.exchange(snapCopied, page, 1);
}

/** A step: writes at most `maxPages` pages, advances `regs`, returns the pages written. */
export type WorkloadStep = (regs: WorkloadRegs, mem: GuestMemory, maxPages: number) => number;

/** `idle`: touches nothing. */
export function stepIdle(_regs: WorkloadRegs, mem: GuestMemory, _maxPages: number): number {
  mem.fault = -1;
  return 0;
}

/**
 * `increment`: walks [start, end) page by page adding 1 to each page's first byte and marking
 * the page dirty (data first, then the mark). Before `booted` it walks once writing 0 instead.
 * With a snapshot on, a page not yet saved is saved before it is written (loops of their own,
 * one byte load per page: measured no slower than the plain ones).
 */
export function stepIncrement(regs: WorkloadRegs, mem: GuestMemory, maxPages: number): number {
  mem.fault = -1;
  if (regs.end <= regs.start) return 0;
  const first = regs.start / PAGE_SIZE;
  const last = regs.end / PAGE_SIZE;
  const dirty = mem.dirty;
  const received = mem.received;
  let page = regs.cursor / PAGE_SIZE;
  let done = 0;
  while (done < maxPages) {
    const bi = blockIndexOfPage(mem.layout, page);
    const block = mem.layout[bi];
    const ram = mem.bytes[bi];
    let stop = Math.min(page + maxPages - done, last, block.firstPage + block.pages);
    let missing = -1;
    if (received !== null) {
      for (let q = page; q < stop; q++) {
        if (received[q] === 0) {
          missing = q;
          stop = q;
          break;
        }
      }
    }
    let off = (page - block.firstPage) * PAGE_SIZE;
    if (mem.snap !== null) {
      const snap = mem.snap[bi];
      const copied = mem.snapCopied;
      if (regs.booted) {
        for (let q = page; q < stop; q++, off += PAGE_SIZE) {
          if (copied[q] === 0) snapshotPage(ram, snap, copied, q, off);
          ram[off]++;
          dirty[q] = 1;
        }
      } else {
        for (let q = page; q < stop; q++, off += PAGE_SIZE) {
          if (copied[q] === 0) snapshotPage(ram, snap, copied, q, off);
          ram[off] = 0;
          dirty[q] = 1;
        }
      }
    } else if (regs.booted) {
      for (let q = page; q < stop; q++, off += PAGE_SIZE) {
        ram[off]++;
        dirty[q] = 1;
      }
    } else {
      for (let q = page; q < stop; q++, off += PAGE_SIZE) {
        ram[off] = 0;
        dirty[q] = 1;
      }
    }
    done += stop - page;
    page = stop;
    if (missing >= 0) {
      mem.fault = missing;
      break;
    }
    if (page === last) {
      page = first;
      if (regs.booted) {
        regs.passes++;
        mem.out.push(incrementRecord(regs.passes, regs.pagesWritten + done));
      } else regs.booted = true;
    }
  }
  regs.cursor = page * PAGE_SIZE;
  regs.pagesWritten += done;
  return done;
}

/**
 * `increment`'s output record at the end of pass `pass`, `pages` written so far (boot included):
 * deterministic given the guest's state, so two copies of a guest write the same records.
 */
export function incrementRecord(pass: number, pages: number): string {
  return `increment pass ${pass} pages ${pages}\n`;
}

/** `random` writes an output record every this many pages. */
export const RANDOM_RECORD_PAGES = 1000;

/**
 * `random`'s output record after `pages` pages: deterministic without `clock`; with it, it
 * carries the host's clock (`now`, ms since the epoch), so two copies of a guest differ.
 */
export function randomRecord(pages: number, clock: boolean, now: number): string {
  return clock ? `random pages ${pages} clock ${now}\n` : `random pages ${pages}\n`;
}

/** Bytes written per page by the `random` workload, at a random aligned offset. */
export const RANDOM_WRITE_BYTES = 64;

/**
 * `random`: writes 64 bytes from the xorshift128 PRNG at a random 64-byte-aligned offset of a
 * page drawn uniformly from the hot set (the first `hot` fraction of the flat page space).
 * With a snapshot on, a page not yet saved is saved before it is written.
 */
export function stepRandom(regs: WorkloadRegs, mem: GuestMemory, maxPages: number): number {
  mem.fault = -1;
  const hotPages = Math.max(1, Math.floor(mem.totalPages * regs.hot));
  const received = mem.received;
  let [x, y, z, w] = regs.prng;
  let done = 0;
  for (; done < maxPages; done++) {
    const sx = x, sy = y, sz = z, sw = w;
    let t = x ^ (x << 11);
    x = y, y = z, z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    const page = Math.floor((w / 4294967296) * hotPages);
    if (received !== null && received[page] === 0) {
      x = sx, y = sy, z = sz, w = sw;
      mem.fault = page;
      break;
    }
    t = x ^ (x << 11);
    x = y, y = z, z = w;
    w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
    const offset = (w & (PAGE_SIZE / RANDOM_WRITE_BYTES - 1)) * RANDOM_WRITE_BYTES;
    const bi = blockIndexOfPage(mem.layout, page);
    const words = mem.words[bi];
    const pageOff = (page - mem.layout[bi].firstPage) * PAGE_SIZE;
    if (mem.snap !== null && mem.snapCopied[page] === 0) {
      snapshotPage(mem.bytes[bi], mem.snap[bi], mem.snapCopied, page, pageOff);
    }
    const at = (pageOff + offset) >>> 2;
    for (let k = 0; k < RANDOM_WRITE_BYTES / 4; k++) {
      t = x ^ (x << 11);
      x = y, y = z, z = w;
      w = (w ^ (w >>> 19) ^ (t ^ (t >>> 8))) >>> 0;
      words[at + k] = w;
    }
    mem.dirty[page] = 1;
    const pages = regs.pagesWritten + done + 1;
    if (pages % RANDOM_RECORD_PAGES === 0) {
      mem.out.push(randomRecord(pages, regs.clock, regs.clock ? Date.now() : 0));
    }
  }
  regs.prng = [x >>> 0, y >>> 0, z >>> 0, w >>> 0];
  regs.pagesWritten += done;
  return done;
}

/** The step function of each workload kind. */
export const WORKLOAD_STEPS: Readonly<Record<WorkloadKind, WorkloadStep>> = {
  idle: stepIdle,
  increment: stepIncrement,
  random: stepRandom,
};
