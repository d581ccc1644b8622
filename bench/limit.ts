/**
 * The host's memory-to-memory limit, measured in the same run as the migration it judges: a
 * raw Deno pair (two fresh processes, TCP or a unix socket) moving a guest's worth of bytes
 * between two RAM-sized buffers, each touched before the clock starts, once on 4 KiB pages and
 * once on transparent huge pages; the better of the two is the limit (hosts of this project's
 * kind differ in which is faster: ../shared/design/perf-facts.md "Page size"). Also the host
 * itself: kernel release and THP mode, which every judged row names.
 *
 * @module
 */
import { type RawResult, runRaw } from "./raw.ts";
import type { RawPages } from "./raw_socket.ts";

/** A limit: both raw pairs, and which won. */
export interface MemoryLimit {
  transport: "tcp" | "unix";
  small: RawResult;
  huge: RawResult;
  /** The faster page size, and its pair. */
  winner: RawPages;
  best: RawResult;
}

/** The machine's kernel and THP settings. */
export interface HostPages {
  kernel: string;
  /** The selected word of /sys/kernel/mm/transparent_hugepage/enabled (null: none). */
  thp: string | null;
  defrag: string | null;
}

/** Reads the kernel release and THP mode (through `sh`: Deno wants --allow-all for /sys). */
export function hostPages(): HostPages {
  const read = (f: string) => {
    try {
      const r = new Deno.Command("sh", {
        args: ["-c", `cat /sys/kernel/mm/transparent_hugepage/${f}`],
        stderr: "null",
      }).outputSync();
      return /\[([^\]]+)\]/.exec(new TextDecoder().decode(r.stdout))?.[1] ?? null;
    } catch {
      return null;
    }
  };
  return { kernel: Deno.osRelease(), thp: read("enabled"), defrag: read("defrag") };
}

/** `kernel 6.18.44, THP madvise`: the host a judged row ran on. */
export function hostLabel(h: HostPages): string {
  return `kernel ${h.kernel}, THP ${h.thp ?? "n/a"}`;
}

/**
 * Measures the limit over `transport` for `bytes` (the guest's RAM): the 4 KiB-page pair,
 * then the huge-page pair, 1 MiB writes (the engine's).
 */
export async function measureLimit(
  transport: "tcp" | "unix",
  bytes: number,
  chunk: number,
): Promise<MemoryLimit> {
  const small = await runRaw(transport, bytes, chunk, bytes, "4k");
  const huge = await runRaw(transport, bytes, chunk, bytes, "huge");
  const winner = huge.bytesPerSec > small.bytesPerSec ? "huge" : "4k";
  return { transport, small, huge, winner, best: winner === "huge" ? huge : small };
}

/** The mean of two runs of the same pair: rate, time and CPU; `samples` keeps both rates. */
function meanRun(a: RawResult, b: RawResult): RawResult {
  const mean = (x: number, y: number) => (x + y) / 2;
  return {
    ...a,
    ms: mean(a.ms, b.ms),
    bytesPerSec: mean(a.bytesPerSec, b.bytesPerSec),
    sinkMs: mean(a.sinkMs, b.sinkMs),
    sinkReads: mean(a.sinkReads, b.sinkReads),
    sourceMs: mean(a.sourceMs, b.sourceMs),
    sinkCpuMs: mean(a.sinkCpuMs, b.sinkCpuMs),
    sourceCpuMs: mean(a.sourceCpuMs, b.sourceCpuMs),
    samples: [a.bytesPerSec, b.bytesPerSec],
  };
}

/**
 * The limit around a migration: each page size's pair measured just before it and just after,
 * averaged. This host changes speed from one minute to the next (bench/README.md, "Two speeds"),
 * and the migration between the two pairs is judged against where the host was on both sides
 * of it, not against one moment before.
 */
export function bracketLimit(before: MemoryLimit, after: MemoryLimit): MemoryLimit {
  const small = meanRun(before.small, after.small);
  const huge = meanRun(before.huge, after.huge);
  const winner = huge.bytesPerSec > small.bytesPerSec ? "huge" : "4k";
  return {
    transport: before.transport,
    small,
    huge,
    winner,
    best: winner === "huge" ? huge : small,
  };
}

/** `huge pages won (2.41 vs 0.35 GB/s)`: a limit in words. */
export function limitLabel(l: MemoryLimit): string {
  const gb = (r: RawResult) => (r.bytesPerSec / 1e9).toFixed(2);
  return l.winner === "huge"
    ? `huge pages won (${gb(l.huge)} vs ${gb(l.small)} GB/s on 4 KiB)`
    : `4 KiB pages won (${gb(l.small)} vs ${gb(l.huge)} GB/s on huge pages)`;
}
