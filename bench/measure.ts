/**
 * Small measuring aids for the bench: wall clock shared between processes, order
 * statistics, and CPU time per process and per thread from /proc (Linux; elsewhere the
 * CPU figures are simply absent).
 *
 * @module
 */

/** Wall-clock milliseconds with sub-millisecond resolution, comparable across processes. */
export function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

/** The median of `xs` (NaN when empty). */
export function median(xs: readonly number[]): number {
  return percentile(xs, 50);
}

/** The `p`th percentile of `xs` (nearest rank; NaN when empty). */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const sorted = [...xs].sort((a, b) => a - b);
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))];
}

/** CPU time of one thread, in milliseconds. */
export interface ThreadCpu {
  tid: number;
  name: string;
  ms: number;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime in ms from a /proc .../stat line (the name may contain spaces). */
function cpuOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/** CPU time of every thread of `pid` (empty when /proc cannot be read). */
export function threadCpu(pid: number): ThreadCpu[] {
  const out: ThreadCpu[] = [];
  try {
    for (const e of Deno.readDirSync(`/proc/${pid}/task`)) {
      try {
        const dir = `/proc/${pid}/task/${e.name}`;
        const name = Deno.readTextFileSync(`${dir}/comm`).trim();
        out.push({ tid: Number(e.name), name, ms: cpuOfStat(Deno.readTextFileSync(`${dir}/stat`)) });
      } catch { /* the thread ended meanwhile */ }
    }
  } catch { /* no /proc or the process ended */ }
  return out;
}

/** CPU time of a whole process in ms, ended threads included (NaN when unreadable). */
export function processCpu(pid: number): number {
  try {
    return cpuOfStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return NaN;
  }
}

/** Busy and total CPU time of the whole machine in ms (from /proc/stat), or null. */
export function machineCpu(): { busy: number; total: number } | null {
  try {
    const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
    const v = line.split(/\s+/).slice(1).map(Number);
    const total = v.slice(0, 8).reduce((a, b) => a + b, 0);
    const idle = v[3] + v[4];
    return { busy: (total - idle) * TICK_MS, total: total * TICK_MS };
  } catch {
    return null;
  }
}

/** A before/after CPU sampler for a set of named processes. */
export interface CpuSample {
  /**
   * Per process: thread name → CPU ms spent between start and stop (threads merged by name),
   * plus `total` for the whole process.
   */
  processes: Record<string, Record<string, number>>;
  /** Machine-wide busy CPU ms and wall ms between start and stop. */
  machineBusyMs: number | null;
  wallMs: number;
}

/** Starts sampling `pids` (name → pid); call the returned function to get the deltas. */
export function sampleCpu(pids: Record<string, number>): () => CpuSample {
  const t0 = wallNow();
  const m0 = machineCpu();
  const before = new Map<number, number>();
  const procBefore = new Map<number, number>();
  for (const pid of Object.values(pids)) {
    for (const t of threadCpu(pid)) before.set(t.tid, t.ms);
    procBefore.set(pid, processCpu(pid));
  }
  return () => {
    const wallMs = wallNow() - t0;
    const m1 = machineCpu();
    const processes: Record<string, Record<string, number>> = {};
    for (const [label, pid] of Object.entries(pids)) {
      const threads: Record<string, number> = {};
      let live = 0;
      for (const t of threadCpu(pid)) {
        const d = t.ms - (before.get(t.tid) ?? 0);
        live += d;
        if (d > 0) threads[t.name] = (threads[t.name] ?? 0) + d;
      }
      const total = processCpu(pid) - (procBefore.get(pid) ?? 0);
      // Threads that ended meanwhile (a finished migration Worker) count only in the total.
      if (total - live > 0) threads["(ended threads)"] = total - live;
      threads.total = total;
      processes[label] = threads;
    }
    return { processes, machineBusyMs: m0 && m1 ? m1.busy - m0.busy : null, wallMs };
  };
}
