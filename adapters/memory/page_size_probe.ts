/**
 * `--huge-pages auto`'s measurement: socket copies over loopback TCP from and into freshly
 * touched 2 MiB windows on 4 KiB pages against the same on a transparent huge page, in this
 * process, before guest RAM is touched. Under 100 ms; the answer is cached per boot in a temp
 * file keyed by the kernel's boot id (and the THP settings), so later agents on the same boot
 * read it instead.
 *
 * Why measure: on one host of this project's kind copies between user memory and a socket
 * pay per 4 KiB page (a raw 1 GiB TCP pair 0.36 GB/s on 4 KiB pages, 2.31 GB/s on huge
 * pages); on another a raw pair measured slower with huge pages (4.3–4.8 vs 6.6 GB/s).
 * Measured here on 2026-12-06 (kernel 6.18, THP `madvise`): the cost is paid on the *first*
 * copy of each 4 KiB page after it was touched, on both the sending and the receiving side
 * (2 MiB windows: first copy 0.33–0.42 GB/s, later copies of the same pages 2.2–6 GB/s; huge
 * pages 2.7–3.3 GB/s every time; reading a page from user space first does not help). A
 * migration copies each page once, so the probe times first copies only: fresh windows for
 * every pass.
 *
 * @module
 */

import { adviseHugePages, HUGE_PAGE_SIZE, hugePageBytes, selectedChoice } from "./huge_pages.ts";
import { alignedRange, readSystemFile } from "./libc.ts";

/** What the probe measured. */
export interface PageSizeProbe {
  /** Best pass, GB/s, through the 4 KiB-page buffers. */
  smallGBps: number;
  /** Best pass, GB/s, through the huge-page buffers. */
  hugeGBps: number;
  /** Bytes of the first huge-page pass's two buffers huge pages really backed (of 4 MiB). */
  hugeBacked: number;
  /** Bytes each pass copied. */
  windowBytes: number;
  /** The probe's own wall time, ms. */
  ms: number;
  /** When it ran (ISO date). */
  at: string;
}

/** A probe as the cache holds it. */
export interface CachedProbe {
  probe: PageSizeProbe;
  /** True when read from the per-boot cache file. */
  cached: boolean;
}

/** The copy window, at the start of an aligned huge page of its buffer. */
const WINDOW = 1 << 20;
/** Passes per page size (each on fresh windows), alternating; the best of each counts. */
const PASSES = 3;
/** Write size (the engine writes runs of up to 1 MiB). */
const CHUNK = 1 << 20;
/** Huge pages must be at least this much faster to be chosen (measurement noise). */
export const HUGE_WIN_RATIO = 1.1;
/** Cache format; a different one is measured again. */
const CACHE_VERSION = 1;

/**
 * Whether huge pages win: they backed the probe's huge-page windows and copied at least
 * HUGE_WIN_RATIO × as fast as 4 KiB pages.
 */
export function hugePagesWin(p: PageSizeProbe): boolean {
  return p.hugeBacked >= 2 * HUGE_PAGE_SIZE && p.hugeGBps >= p.smallGBps * HUGE_WIN_RATIO;
}

/** A buffer with a touched window of WINDOW bytes at the start of an aligned 2 MiB stretch. */
function windowBuffer(huge: boolean): { buf: SharedArrayBuffer; view: Uint8Array } {
  const buf = new SharedArrayBuffer(2 * HUGE_PAGE_SIZE);
  adviseHugePages(buf, huge);
  const { start } = alignedRange(buf, 0, buf.byteLength, HUGE_PAGE_SIZE);
  const base = alignedRange(buf, 0, buf.byteLength, 1).start;
  const view = new Uint8Array(buf, Number(start - base), WINDOW);
  for (let o = 0; o < WINDOW; o += 4096) view[o] = (o >> 12) | 1;
  return { buf, view };
}

/** Copies the window once from `src` through `conn` into `dst` via `peer`; ms. */
async function pass(conn: Deno.Conn, peer: Deno.Conn, src: Uint8Array, dst: Uint8Array) {
  const t0 = performance.now();
  const reader = (async () => {
    for (let got = 0; got < WINDOW;) {
      const n = await peer.read(dst.subarray(got, Math.min(WINDOW, got + CHUNK)));
      if (n === null) throw new Error("page-size probe: connection closed early");
      got += n;
    }
  })();
  for (let sent = 0; sent < WINDOW;) {
    sent += await conn.write(src.subarray(sent, Math.min(WINDOW, sent + CHUNK)));
  }
  await reader;
  return performance.now() - t0;
}

/** Runs the probe now (see the module doc). Needs FFI (madvise) and loopback TCP. */
export async function probePageSizes(): Promise<PageSizeProbe> {
  const t0 = performance.now();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conn = await Deno.connect({
    hostname: "127.0.0.1",
    port: (listener.addr as Deno.NetAddr).port,
  });
  const peer = await listener.accept();
  listener.close();
  conn.setNoDelay(true);
  // Every window is allocated and touched up front: memory the allocator hands out again
  // after a free may have been copied by the kernel before, and would not be a first copy.
  const windows = Array.from({ length: PASSES }, () => ({
    small: [windowBuffer(false), windowBuffer(false)],
    huge: [windowBuffer(true), windowBuffer(true)],
  }));
  const backed = hugePageBytes(windows[0].huge.map((w) => w.buf)) ?? 0;
  const best = { small: Infinity, huge: Infinity };
  try {
    for (let p = 0; p < PASSES; p++) {
      const order = p % 2 === 0 ? (["small", "huge"] as const) : (["huge", "small"] as const);
      for (const kind of order) {
        const [a, b] = windows[p][kind];
        best[kind] = Math.min(best[kind], await pass(conn, peer, a.view, b.view));
      }
    }
  } finally {
    conn.close();
    peer.close();
  }
  const gbps = (ms: number) => Math.round(WINDOW / ms / 1e4) / 100;
  return {
    smallGBps: gbps(best.small),
    hugeGBps: gbps(best.huge),
    hugeBacked: backed,
    windowBytes: WINDOW,
    ms: Math.round(performance.now() - t0),
    at: new Date().toISOString(),
  };
}

/** What a cached answer must match: this boot and the THP settings it was measured under. */
export function probeKey(): string | null {
  const boot = readSystemFile("/proc/sys/kernel/random/boot_id")?.trim();
  if (!boot) return null;
  const thp = ["enabled", "defrag"].map((f) =>
    selectedChoice(readSystemFile(`/sys/kernel/mm/transparent_hugepage/${f}`) ?? "") ?? "-"
  );
  return `${boot}.thp-${thp.join("-")}`;
}

/** The temp directory: $TMPDIR when it may be read, else /tmp. */
function tempDir(): string {
  try {
    return Deno.env.get("TMPDIR") || "/tmp";
  } catch {
    return "/tmp";
  }
}

/**
 * The probe for this boot: read from `dir`'s cache file when one for this boot and THP
 * setting exists, else measured now and written there (atomically; a failed write is
 * ignored, the next agent measures again).
 */
export async function cachedProbe(dir = tempDir()): Promise<CachedProbe> {
  const key = probeKey();
  const path = key === null ? null : `${dir}/ferry-page-size-${key}.json`;
  if (path !== null) {
    try {
      const doc = JSON.parse(await Deno.readTextFile(path));
      if (doc.version === CACHE_VERSION && doc.key === key && isProbe(doc.probe)) {
        return { probe: doc.probe, cached: true };
      }
    } catch { /* absent or unreadable: measure */ }
  }
  const probe = await probePageSizes();
  if (path !== null) {
    const tmp = `${path}.${Deno.pid}.${crypto.randomUUID()}`;
    try {
      await Deno.writeTextFile(tmp, JSON.stringify({ version: CACHE_VERSION, key, probe }) + "\n");
      await Deno.rename(tmp, path);
    } catch {
      await Deno.remove(tmp).catch(() => {});
    }
  }
  return { probe, cached: false };
}

function isProbe(x: unknown): x is PageSizeProbe {
  const p = x as PageSizeProbe;
  return typeof p === "object" && p !== null &&
    [p.smallGBps, p.hugeGBps, p.hugeBacked, p.windowBytes, p.ms].every(Number.isFinite) &&
    typeof p.at === "string";
}
