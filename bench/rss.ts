/**
 * Resident memory of agent processes (Linux): a `sh` loop samples `VmRSS` from
 * /proc/PID/status every 50 ms while a scenario runs, and at the end one more read gives
 * `VmHWM`, the kernel's own high-water mark, which catches a peak between samples. Through
 * `sh` because Deno wants --allow-all to read /proc itself. Elsewhere the values are NaN.
 *
 * @module
 */
import type { Figure } from "./report.ts";
import { median } from "./measure.ts";

/** What the sampler saw of one process, in KiB. */
export interface RssPeak {
  pid: number;
  /** VmHWM at the end: the peak resident set since the process started. */
  hwmKiB: number;
  /** The largest VmRSS sampled while watching. */
  sampledMaxKiB: number;
  /** VmRSS at the end. */
  lastKiB: number;
  samples: number;
}

/** Reads `VmRSS` and `VmHWM` of `pids` in one `sh`; pid → {rss, hwm} in KiB. */
function readStatus(pids: readonly number[]): Map<number, { rss: number; hwm: number }> {
  const out = new Map<number, { rss: number; hwm: number }>();
  try {
    const r = new Deno.Command("sh", { args: ["-c", script(pids, false)], stderr: "null" })
      .outputSync();
    parse(new TextDecoder().decode(r.stdout), out, () => {});
  } catch { /* not Linux */ }
  return out;
}

/**
 * One line per pid: `PID VmHWM: N kB VmRSS: N kB`. With `loop`, every 50 ms for as long as
 * every watched process and the bench itself live (so the loop cannot outlive a crash).
 */
function script(pids: readonly number[], loop: boolean): string {
  const once = `for p in ${pids.join(" ")}; do printf '%s ' $p; ` +
    `grep -E '^(VmRSS|VmHWM)' /proc/$p/status 2>/dev/null | tr -s ' \\t\\n' ' '; echo; done`;
  const alive = [...pids, Deno.pid].map((p) => `[ -e /proc/${p}/status ]`).join(" && ");
  return loop ? `while ${alive}; do ${once}; sleep 0.05; done` : once;
}

function parse(
  text: string,
  into: Map<number, { rss: number; hwm: number }>,
  each: (pid: number, rss: number) => void,
): void {
  for (const line of text.split("\n")) {
    const pid = Number(line.split(" ")[0]);
    const rss = Number(/VmRSS: (\d+)/.exec(line)?.[1]);
    const hwm = Number(/VmHWM: (\d+)/.exec(line)?.[1]);
    if (!(pid > 0) || !(rss > 0)) continue;
    into.set(pid, { rss, hwm });
    each(pid, rss);
  }
}

/**
 * Starts watching `pids` (label → pid); `stop()` ends the loop and returns each peak (call it
 * before the processes end; later calls return the same answer).
 */
export function watchRss(pids: Record<string, number>): {
  stop(): Promise<Record<string, RssPeak>>;
} {
  const list = Object.values(pids);
  const max = new Map<number, number>();
  const count = new Map<number, number>();
  const seen = (pid: number, rss: number) => {
    max.set(pid, Math.max(max.get(pid) ?? 0, rss));
    count.set(pid, (count.get(pid) ?? 0) + 1);
  };
  let child: Deno.ChildProcess | null = null;
  let reading: Promise<void> = Promise.resolve();
  try {
    child = new Deno.Command("sh", {
      args: ["-c", script(list, true)],
      stdin: "null",
      stdout: "piped",
      stderr: "null",
    }).spawn();
    const stdout = child.stdout;
    reading = (async () => {
      let pending = "";
      const sink = new Map<number, { rss: number; hwm: number }>();
      for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
        pending += chunk;
        const cut = pending.lastIndexOf("\n");
        if (cut < 0) continue;
        parse(pending.slice(0, cut), sink, seen);
        pending = pending.slice(cut + 1);
      }
    })().catch(() => {});
  } catch { /* no sh: only the final read */ }
  let stopped: Promise<Record<string, RssPeak>> | null = null;
  const stop = async () => {
    if (child) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
      await child.status;
      await reading;
    }
    const last = readStatus(list);
    const result: Record<string, RssPeak> = {};
    for (const [label, pid] of Object.entries(pids)) {
      const end = last.get(pid);
      result[label] = {
        pid,
        hwmKiB: end?.hwm ?? NaN,
        sampledMaxKiB: Math.max(max.get(pid) ?? 0, end?.rss ?? 0) || NaN,
        lastKiB: end?.rss ?? NaN,
        samples: count.get(pid) ?? 0,
      };
    }
    return result;
  };
  return { stop: () => stopped ??= stop() };
}

/**
 * One table row per process label: the median peak (VmHWM) in MiB against the budget
 * `budgetBytes` (guest RAM + XBZRLE cache + 128 MiB); the target is a ratio ≤ 1.
 */
export function rssFigures(
  prefix: string,
  what: string,
  peaks: readonly Record<string, RssPeak>[],
  budgetBytes: number,
  budgetName: string,
): Figure[] {
  if (peaks.length === 0) return [];
  const budget = budgetBytes / 2 ** 20;
  return Object.keys(peaks[0]).map((label) => {
    const value = median(peaks.map((p) => p[label]?.hwmKiB / 1024));
    const ratio = value / budget;
    return {
      id: `${prefix}.rss.${label}`,
      figure: `${what}: peak RSS of the ${label} (VmHWM)`,
      value,
      unit: "MiB",
      baseline: budget,
      baselineName: budgetName,
      ratio,
      target: "ratio ≤ 1",
      pass: Number.isFinite(ratio) ? ratio <= 1 : null,
    };
  });
}
