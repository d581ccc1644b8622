/**
 * Resident memory of agent processes (Linux): one read of /proc/PID/status at the end of a
 * scenario gives `VmHWM`, the kernel's own high-water mark of the resident set since the
 * process started, so no sampling runs meanwhile (a `sh` loop forking grep every 50 ms took
 * about a tenth of a core from the migration it watched). Through `sh` because Deno wants
 * --allow-all to read /proc itself. Elsewhere the values are NaN.
 *
 * @module
 */
import type { Figure } from "./figure.ts";
import { median } from "./measure.ts";

/** What the sampler saw of one process, in KiB. */
export interface RssPeak {
  pid: number;
  /** VmHWM at the end: the peak resident set since the process started. */
  hwmKiB: number;
  /** VmRSS at the end. */
  lastKiB: number;
}

/** Reads `VmRSS` and `VmHWM` of `pids` in one `sh`; pid → {rss, hwm} in KiB. */
function readStatus(pids: readonly number[]): Map<number, { rss: number; hwm: number }> {
  const out = new Map<number, { rss: number; hwm: number }>();
  try {
    const r = new Deno.Command("sh", { args: ["-c", script(pids)], stderr: "null" })
      .outputSync();
    parse(new TextDecoder().decode(r.stdout), out);
  } catch { /* not Linux */ }
  return out;
}

/** One line per pid: `PID VmHWM: N kB VmRSS: N kB`. */
function script(pids: readonly number[]): string {
  return `for p in ${pids.join(" ")}; do printf '%s ' $p; ` +
    `grep -E '^(VmRSS|VmHWM)' /proc/$p/status 2>/dev/null | tr -s ' \\t\\n' ' '; echo; done`;
}

function parse(
  text: string,
  into: Map<number, { rss: number; hwm: number }>,
): void {
  for (const line of text.split("\n")) {
    const pid = Number(line.split(" ")[0]);
    const rss = Number(/VmRSS: (\d+)/.exec(line)?.[1]);
    const hwm = Number(/VmHWM: (\d+)/.exec(line)?.[1]);
    if (!(pid > 0) || !(rss > 0)) continue;
    into.set(pid, { rss, hwm });
  }
}

/**
 * Watches `pids` (label → pid): `stop()` reads each one's peak (call it before the processes
 * end; later calls return the same answer).
 */
export function watchRss(pids: Record<string, number>): {
  stop(): Promise<Record<string, RssPeak>>;
} {
  let result: Record<string, RssPeak> | null = null;
  const stop = () => {
    if (!result) {
      const last = readStatus(Object.values(pids));
      result = {};
      for (const [label, pid] of Object.entries(pids)) {
        const end = last.get(pid);
        result[label] = { pid, hwmKiB: end?.hwm ?? NaN, lastKiB: end?.rss ?? NaN };
      }
    }
    return Promise.resolve(result);
  };
  return { stop };
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
