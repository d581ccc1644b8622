/**
 * Guest RAM on SharedArrayBuffers: the structured-cloneable `SharedGuest` handle, its
 * allocation, filling (zero / random / pattern) and pre-touching, and `--ram` size parsing.
 *
 * @module
 */

import type { SharedDrive } from "../disk/drive.ts";
import {
  layoutBlocks,
  PAGE_SIZE,
  pageMapBytes,
  type RamBlockLayout,
  type RamBlockSpec,
  totalPages,
  validateBlockSpecs,
} from "./layout.ts";
import { CTL_BYTES } from "./vcpu_ctl.ts";
import type { GuestMemory } from "./workload.ts";
import type { WasmShared } from "../wasm/wasm_shared.ts";

/** Everything another thread needs to reach the guest; postMessage it to any Worker. */
export interface SharedGuest {
  /** Target page size, PAGE_SIZE. */
  pageSize: number;
  /**
   * The page size asked of the kernel for the RAM buffers (ram_backing.ts): 2 MiB when they
   * are advised huge pages, else PAGE_SIZE. Other large buffers of a migration follow it.
   */
  ramPageSize: number;
  /** Blocks in the flat page space. */
  layout: RamBlockLayout[];
  /** One buffer per block, `block.size` bytes. */
  ram: SharedArrayBuffer[];
  /** Dirty log: one byte per page of the flat page space (rounded up to a multiple of 8). */
  dirty: SharedArrayBuffer;
  /** Destination postcopy: one byte per page, 1 = page present (same size as `dirty`). */
  received: SharedArrayBuffer;
  /** vCPU control block and registers (see vcpu_ctl.ts). */
  ctl: SharedArrayBuffer;
  /**
   * One byte per page (same size as `dirty`): 0 = never written since allocation, so the page
   * is known to be zero without reading it (reading never-touched memory costs a page fault
   * per page). Invariant: a page holding non-zero data has `written` = 1 or a dirty-log mark.
   * The fill sets it, the migration's dirty-log sync ORs its marks in, a destination sets it
   * for every page it stores.
   */
  written: SharedArrayBuffer;
  /**
   * Copy-on-first-write snapshot: one buffer per block, `block.size` bytes. While the SNAPSHOT
   * flag is set, the vCPU saves a page here before its first write to it. Allocated for every
   * guest; the kernel commits a page of it only when it is written.
   */
  snap: SharedArrayBuffer[];
  /** One byte per page (same size as `dirty`): 1 = the page's snapshot copy is in `snap`. */
  snapCopied: SharedArrayBuffer;
  /**
   * A WebAssembly guest (`--guest wasm:`): its linear memory is `ram[0]`, its dirty-log memory
   * is `dirty` (longer than the map; zero beyond it). Absent for the synthetic workloads.
   */
  wasm?: WasmShared;
  /** The drives (`--drive`): raw images and their block maps (adapters/disk/drive.ts). */
  drives?: SharedDrive[];
  /** The workload's disk writes per second (`disk=`), 0 or absent: none. */
  diskWrites?: number;
  /** The agent's `late-block-activate` (1 = on), written by the main thread on every change. */
  lateBlockActivate?: Int32Array;
}

/** How `Machine.create` fills RAM that does not arrive by migration. */
export type RamFill = "zero" | "random" | "pattern";

const SIZE_SUFFIX = "BKMGTPE";

/**
 * Parses a size: a number with an optional suffix B, K, M, G, T, P or E (powers of 1024,
 * any case), e.g. `4096`, `64k`, `128M`, `1G`, `1.5G`. Throws a RangeError on anything else,
 * on fractional byte counts and on sizes beyond 2^53.
 */
export function parseSize(s: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([a-z]?)\s*$/i.exec(s);
  const unit = m ? SIZE_SUFFIX.indexOf((m[2] || "B").toUpperCase()) : -1;
  if (!m || unit < 0) {
    throw new RangeError(
      `invalid size '${s}': expected a number with an optional suffix B, K, M, G, T, P or E`,
    );
  }
  const bytes = Number(m[1]) * 1024 ** unit;
  if (!Number.isSafeInteger(bytes)) {
    throw new RangeError(`invalid size '${s}': not a whole number of bytes below 2^53`);
  }
  return bytes;
}

/**
 * Allocates zeroed RAM, dirty log, received map, snapshot buffers and control block for the
 * given blocks. Nothing is touched, so RAM and snapshot pages cost memory only once written.
 * Without `snapshot` the snapshot buffers are empty: no copy-on-first-write snapshot can be
 * taken, and the guest has one copy of RAM.
 */
export function allocateGuest(
  specs: readonly RamBlockSpec[],
  opts: { snapshot?: boolean; wasm?: WasmShared } = {},
): SharedGuest {
  const snapshot = opts.snapshot ?? true;
  const wasm = opts.wasm;
  validateBlockSpecs(specs);
  const layout = layoutBlocks(specs);
  const mapBytes = pageMapBytes(totalPages(layout));
  // A WebAssembly guest's block is its memory as a growable SharedArrayBuffer: its byteLength
  // is the used size (memory.grow moves it, seen at once by every thread), its maxByteLength
  // at most the block's size (the cap, --ram).
  const grown = wasm ? resizableBuffer(wasm.memory) : null;
  if (wasm && (layout.length !== 1 || grown!.maxByteLength > layout[0].size)) {
    throw new RangeError("RAM layout: a WebAssembly guest has one RAM block, its memory");
  }
  return {
    pageSize: PAGE_SIZE,
    ramPageSize: PAGE_SIZE,
    layout,
    ram: grown ? [grown] : layout.map((block) => new SharedArrayBuffer(block.size)),
    dirty: wasm ? wasm.dirtyMemory.buffer as SharedArrayBuffer : new SharedArrayBuffer(mapBytes),
    received: new SharedArrayBuffer(mapBytes),
    ctl: new SharedArrayBuffer(CTL_BYTES),
    written: new SharedArrayBuffer(mapBytes),
    snap: layout.map((block) => new SharedArrayBuffer(snapshot ? block.size : 0)),
    snapCopied: new SharedArrayBuffer(snapshot ? mapBytes : 0),
    ...(wasm ? { wasm } : {}),
  };
}

/**
 * Decision: a guest's memory starts small and grows (measured 2026-12-06, bench/
 * wasm_memory_grow.ts, 2 shared cores, kernel 6.18, THP madvise). It is a shared
 * `WebAssembly.Memory` of the module's declared initial size whose maximum is the cap
 * (`--ram`, or the module's own maximum when lower): V8 reserves the maximum's address space at
 * once and commits pages as memory.grow asks, in place, so every thread sees the growth and no
 * buffer moves. Its bytes are the RAM block as a growable SharedArrayBuffer
 * (`memory.toResizableBuffer()`: byteLength = the size now). Against the alternative, the whole
 * cap allocated from the start and touched lazily (what Ferry did before):
 *
 * - memory: the same. Untouched pages cost nothing either way; creating 256 MiB took 0.67 ms and
 *   ~0.7 MiB RSS at the cap, 0.02 ms starting at one page. Growing 64 KiB → 256 MiB as the
 *   sample guests' allocator does (66 memory.grow calls) took 1.4–2.8 ms in all (1 GiB: 114
 *   calls, 15 ms), nothing next to touching the pages (~1 s per 256 MiB here either way).
 * - what it buys: memory.size is what the program uses (a C or Rust allocator grows it as it
 *   needs, as on any runtime), `GET /machine` shows it (blocks[].used), a migration reads and
 *   sends only the used part (the cap's pages past it are neither scanned nor sent: a full
 *   buffer must be walked whole, every page marked written since the program may store
 *   anywhere), and the digest hashes the used part.
 * - what it costs: a typed-array view made on the growable buffer without a length follows its
 *   size but reads 36× slower (a zero-page scan of 256 MiB: 1182 ms, against 32 ms on a fixed
 *   buffer); with a length it is 56 ms. So the hot loops (page sender, RAM loader) use views
 *   with a length, made again when the block grows (guest_ram.ts ramViews). Copies (subarray +
 *   set, the page runs) cost the same: 14.5 ms per 256 MiB both ways.
 * - huge pages: the reservation is advised whole at start (huge_pages.ts), so the pages the
 *   memory grows into are huge pages where the host gives them.
 *
 * This returns those bytes: a growable SharedArrayBuffer that follows the memory's size.
 */
export function resizableBuffer(memory: WebAssembly.Memory): SharedArrayBuffer {
  return (memory as unknown as { toResizableBuffer(): SharedArrayBuffer }).toResizableBuffer();
}

/**
 * Byte and word views of every block at its size now, for hot loops. A view of a growable
 * buffer made without a length follows its size but reads ~36× slower in V8 (bench/
 * wasm_memory_grow.ts: a zero-page scan of 256 MiB 1182 ms, against 56 ms with a length and
 * 32 ms on a fixed buffer); make them again (this) when a block grew.
 */
export function ramViews(guest: SharedGuest): { ram8: Uint8Array[]; ram32: Uint32Array[] } {
  return {
    ram8: guest.ram.map((b) => new Uint8Array(b, 0, b.byteLength)),
    ram32: guest.ram.map((b) => new Uint32Array(b, 0, b.byteLength >> 2)),
  };
}

/** The step a growable block grows by: a wasm page. */
export const GROW_UNIT = 65536;

/**
 * Bytes of block `b` in use (QEMU's used_length): a WebAssembly guest's memory grows while it
 * runs (its buffer is growable: byteLength is the size now, shared by every thread, and views
 * made without a length follow it); every other block is whole from the start.
 */
export function usedBytes(guest: SharedGuest, b: number): number {
  return guest.ram[b].byteLength;
}

/** Pages of block `b` in use (see {@link usedBytes}). */
export function usedPages(guest: SharedGuest, b: number): number {
  return guest.ram[b].byteLength / PAGE_SIZE;
}

/** The step block `b` grows by, or null when it cannot grow. */
export function growUnit(guest: SharedGuest, b: number): number | null {
  return guest.ram[b].growable ? GROW_UNIT : null;
}

/**
 * Grows block `b` to `bytes` in use (a multiple of GROW_UNIT, at most its maximum; checked by
 * the caller); nothing when it has that much already. The new bytes are zero.
 */
export function growBlock(guest: SharedGuest, b: number, bytes: number): void {
  const buf = guest.ram[b];
  if (bytes > buf.byteLength) buf.grow(bytes);
}

/** RAM bytes in use of a guest (QEMU's ram_bytes_total: the blocks' used lengths). */
export function usedRamBytes(guest: SharedGuest): number {
  return guest.ram.reduce((n, buf) => n + buf.byteLength, 0);
}

/** Total RAM bytes of a guest. */
export function ramSize(guest: SharedGuest): number {
  return guest.layout.reduce((n, block) => n + block.size, 0);
}

/** Fills `words` with xorshift32 output, four words per round (well over 1 GB/s). */
export function fillRandom(words: Uint32Array, seed: number): void {
  let x = seed >>> 0 || 0x2545f491;
  const n = words.length & ~3;
  for (let i = 0; i < n; i += 4) {
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5, words[i] = x;
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5, words[i + 1] = x;
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5, words[i + 2] = x;
    x ^= x << 13, x ^= x >>> 17, x ^= x << 5, words[i + 3] = x;
  }
  for (let i = n; i < words.length; i++) x ^= x << 13, x ^= x >>> 17, x ^= x << 5, words[i] = x;
}

/**
 * Fills whole pages with the deterministic pattern; `ram` starts at flat page `firstPage`.
 * Byte `o` of flat page `p` is `(p + o) & 255`, except bytes 0..7, which hold `p` as a
 * little-endian 64-bit integer (so every page differs).
 */
export function fillPattern(ram: Uint8Array, firstPage: number): void {
  const ramp = new Uint8Array(PAGE_SIZE + 256);
  for (let i = 0; i < ramp.length; i++) ramp[i] = i & 255;
  const pages = Math.floor(ram.length / PAGE_SIZE);
  for (let i = 0; i < pages; i++) {
    const p = firstPage + i;
    const off = i * PAGE_SIZE;
    const shift = p & 255;
    ram.set(ramp.subarray(shift, shift + PAGE_SIZE), off);
    let v = p;
    for (let b = 0; b < 8; b++, v = Math.floor(v / 256)) ram[off + b] = v & 255;
  }
}

/**
 * Writes one byte per page so the kernel's first-touch page faults are paid now, before a
 * migration stream arrives (like QEMU's -mem-prealloc). The bytes stay zero.
 */
export function preTouch(ram: Uint8Array): void {
  for (let off = 0; off < ram.length; off += PAGE_SIZE) ram[off] = 0;
}

/** How RAM is prepared: one of the fills, or `touch` (pre-touch, for an incoming guest). */
export type RamPrep = RamFill | "touch";

/** A share of the preparation: `pages` pages of block buffer `buf` from page `pageInBlock`. */
export interface PrepJob {
  buf: SharedArrayBuffer;
  pageInBlock: number;
  pages: number;
  /** Flat page number of the job's first page (pattern). */
  firstPage: number;
  prep: RamPrep;
  seed: number;
}

/** Splits preparing a guest into about `parts` jobs of similar size (none for `zero`). */
export function prepJobs(guest: SharedGuest, prep: RamPrep, parts: number): PrepJob[] {
  if (prep === "zero") return [];
  const per = Math.max(1, Math.ceil(totalPages(guest.layout) / Math.max(1, parts)));
  const seeds = crypto.getRandomValues(new Uint32Array(guest.layout.length + parts));
  const jobs: PrepJob[] = [];
  guest.layout.forEach((block, i) => {
    const used = usedPages(guest, i);
    for (let at = 0; at < used; at += per) {
      const seed = seeds[jobs.length % seeds.length];
      const pages = Math.min(per, used - at);
      jobs.push({
        buf: guest.ram[i],
        pageInBlock: at,
        pages,
        firstPage: block.firstPage + at,
        prep,
        seed,
      });
    }
  });
  return jobs;
}

/** Runs one preparation job (in any thread). */
export function runPrepJob(job: PrepJob): void {
  const offset = job.pageInBlock * PAGE_SIZE;
  const bytes = job.pages * PAGE_SIZE;
  if (job.prep === "random") fillRandom(new Uint32Array(job.buf, offset, bytes / 4), job.seed);
  else if (job.prep === "pattern") {
    fillPattern(new Uint8Array(job.buf, offset, bytes), job.firstPage);
  } else if (job.prep === "touch") preTouch(new Uint8Array(job.buf, offset, bytes));
}

/** Prepares every block as `prep` says, in this thread. */
export function prepareGuest(guest: SharedGuest, prep: RamPrep): void {
  for (const job of prepJobs(guest, prep, 1)) runPrepJob(job);
}

/** Typed-array views of a guest for the workload step functions (postcopy and snapshot off). */
export function guestMemory(guest: SharedGuest): GuestMemory {
  return {
    layout: guest.layout,
    bytes: guest.ram.map((buf) => new Uint8Array(buf)),
    words: guest.ram.map((buf) => new Uint32Array(buf)),
    dirty: new Uint8Array(guest.dirty),
    received: null,
    snap: null,
    snapCopied: new Uint8Array(guest.snapCopied),
    totalPages: totalPages(guest.layout),
    fault: -1,
    out: [],
  };
}
