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

/** One look at /proc: the threads and whole-process CPU of some processes, and the machine's. */
interface ProcSnapshot {
  threads: Map<number, ThreadCpu[]>;
  process: Map<number, number>;
  machine: { task: number; irq: number; steal: number } | null;
}

const TICK_MS = 10; // USER_HZ is 100 on Linux

/** utime + stime in ms from a /proc .../stat line (the name may contain spaces). */
function cpuOfStat(stat: string): number {
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) * TICK_MS;
}

/**
 * Reads /proc through `sh` (Deno asks for --allow-all to read /proc itself, and the bench
 * task runs with --allow-run): per pid, each thread's comm and stat, and the process stat;
 * then the machine's first /proc/stat line. Empty results when that fails (not Linux).
 */
function readProc(pids: readonly number[]): ProcSnapshot {
  const snap: ProcSnapshot = { threads: new Map(), process: new Map(), machine: null };
  const script =
    pids.map((p) =>
      `for t in /proc/${p}/task/*; do printf 'T ${p} %s|%s|' "$(cat $t/comm)" ` +
      `"$(cut -d' ' -f1 $t/schedstat 2>/dev/null)"; cat $t/stat; done; ` +
      `printf 'P ${p} '; cat /proc/${p}/stat; `
    ).join("") + "head -1 /proc/stat";
  let out = "";
  try {
    const r = new Deno.Command("sh", { args: ["-c", script], stderr: "null" }).outputSync();
    out = new TextDecoder().decode(r.stdout);
  } catch {
    return snap;
  }
  for (const line of out.split("\n")) {
    if (line.startsWith("T ")) {
      const pid = Number(line.split(" ")[1]);
      const bar = line.indexOf("|");
      const bar2 = line.indexOf("|", bar + 1);
      const name = line.slice(line.indexOf(" ", 2) + 1, bar);
      const ns = line.slice(bar + 1, bar2);
      const stat = line.slice(bar2 + 1);
      const list = snap.threads.get(pid) ?? [];
      // schedstat's run time (ns) where the kernel keeps it; else stat's 10 ms ticks.
      const ms = /^\d+$/.test(ns) ? Number(ns) / 1e6 : cpuOfStat(stat);
      list.push({ tid: Number(stat.split(" ")[0]), name, ms });
      snap.threads.set(pid, list);
    } else if (line.startsWith("P ")) {
      const pid = Number(line.split(" ")[1]);
      snap.process.set(pid, cpuOfStat(line.slice(line.indexOf(" ", 2) + 1)));
    } else if (line.startsWith("cpu ")) {
      // user nice system idle iowait irq softirq steal
      const v = line.trim().split(/\s+/).slice(1, 9).map(Number);
      snap.machine = {
        task: (v[0] + v[1] + v[2]) * TICK_MS,
        irq: (v[5] + v[6]) * TICK_MS,
        steal: v[7] * TICK_MS,
      };
    }
  }
  return snap;
}

/** A before/after CPU sampler for a set of named processes. */
export interface CpuSample {
  /**
   * Per process: thread name → CPU ms spent between start and stop (threads merged by name;
   * the process's first thread is `(main thread)`), `(live threads)` for the threads alive at
   * the end together (ns-precise from schedstat), `(ended threads)` for those that ended
   * meanwhile, and `total` for the whole process (10 ms ticks).
   */
  processes: Record<string, Record<string, number>>;
  /** Machine-wide busy CPU ms between start and stop (user + system + irq + softirq). */
  machineBusyMs: number | null;
  /**
   * Interrupt and softirq CPU ms: charged to no process; on loopback TCP this is mostly the
   * receive path of the bytes being measured (about 0.1 s per GiB here).
   */
  irqMs: number | null;
  /** User + system CPU ms of every other process (machine minus the sampled processes). */
  otherMs: number | null;
  /** CPU ms the hypervisor took (steal). */
  stealMs: number | null;
  wallMs: number;
}

/** Starts sampling `pids` (label → pid); call the returned function to get the deltas. */
export function sampleCpu(pids: Record<string, number>): () => CpuSample {
  const t0 = wallNow();
  const before = readProc(Object.values(pids));
  return () => {
    const wallMs = wallNow() - t0;
    const after = readProc(Object.values(pids));
    const was = new Map<number, number>();
    for (const list of before.threads.values()) for (const t of list) was.set(t.tid, t.ms);
    const processes: Record<string, Record<string, number>> = {};
    for (const [label, pid] of Object.entries(pids)) {
      const threads: Record<string, number> = {};
      let live = 0;
      for (const t of after.threads.get(pid) ?? []) {
        const d = t.ms - (was.get(t.tid) ?? 0);
        live += d;
        const name = t.tid === pid ? "(main thread)" : t.name;
        if (d > 0) threads[name] = (threads[name] ?? 0) + d;
      }
      const total = (after.process.get(pid) ?? NaN) - (before.process.get(pid) ?? NaN);
      // Threads that ended meanwhile (a finished migration Worker) count only in the total.
      if (total - live > 0) threads["(ended threads)"] = total - live;
      threads["(live threads)"] = live;
      threads.total = total;
      processes[label] = threads;
    }
    const m0 = before.machine;
    const m1 = after.machine;
    const task = m0 && m1 ? m1.task - m0.task : null;
    const irq = m0 && m1 ? m1.irq - m0.irq : null;
    const ours = Object.values(processes).reduce((n, p) => n + (p.total || 0), 0);
    return {
      processes,
      machineBusyMs: task === null || irq === null ? null : task + irq,
      irqMs: irq,
      otherMs: task === null ? null : Math.max(0, task - ours),
      stealMs: m0 && m1 ? m1.steal - m0.steal : null,
      wallMs,
    };
  };
}

/** What {@link waitForQuiet} saw. */
export interface QuietWait {
  /** ms spent waiting. */
  waitedMs: number;
  /** Busy cores of the whole machine over the last window (NaN without /proc). */
  busyCores: number;
}

/**
 * Waits until the whole machine is nearly idle (busy < `maxBusyCores` over a `windowMs`
 * window), at most `timeoutMs`: other work on a small shared machine skews every figure.
 */
export async function waitForQuiet(
  maxBusyCores = 0.25,
  windowMs = 250,
  timeoutMs = 10_000,
): Promise<QuietWait> {
  const t0 = performance.now();
  for (;;) {
    const a = readProc([]).machine;
    const w0 = performance.now();
    await new Promise((r) => setTimeout(r, windowMs));
    const b = readProc([]).machine;
    const busyCores = a && b ? (b.task + b.irq - a.task - a.irq) / (performance.now() - w0) : NaN;
    const waitedMs = performance.now() - t0;
    if (!(busyCores >= maxBusyCores) || waitedMs >= timeoutMs) return { waitedMs, busyCores };
  }
}
