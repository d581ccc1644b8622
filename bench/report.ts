/**
 * Turns the scenarios' repetitions into the bench's figures (medians; each with the
 * baseline measured in the same run, the ratio, the target and whether it is met) and
 * renders them as a text table.
 *
 * @module
 */
import { median, percentile } from "./measure.ts";
import { rssFigures } from "./rss.ts";
import type { ScenarioARun, ScenarioBRun } from "./scenarios.ts";

/** One row of the table. */
export interface Figure {
  id: string;
  figure: string;
  value: number;
  unit: string;
  baseline: number | null;
  baselineName: string | null;
  /** value / baseline (for A: the median of the per-repetition ratios). */
  ratio: number | null;
  /** Human form of the target, or null for an informational row. */
  target: string | null;
  pass: boolean | null;
}

const GB = 1e9;

/** An informational row: a value with no baseline and no target. */
export function infoFigure(id: string, figure: string, value: number, unit: string): Figure {
  return {
    id,
    figure,
    value,
    unit,
    baseline: null,
    baselineName: null,
    ratio: null,
    target: null,
    pass: null,
  };
}

/** The figures of scenarios A and C (C pools the latencies of every repetition). */
export function figuresA(runs: readonly ScenarioARun[]): Figure[] {
  if (runs.length === 0) return [];
  const agent = runs.map((r) => r.agentBytesPerSec / GB);
  const wall = runs.map((r) => r.wallBytesPerSec / GB);
  const tcp = runs.map((r) => r.rawTcp.bytesPerSec / GB);
  const unix = runs.map((r) => r.rawUnix.bytesPerSec / GB);
  const ratioA = median(runs.map((r) => r.agentBytesPerSec / r.rawTcp.bytesPerSec));
  const during = runs.flatMap((r) => r.latencyMs);
  const idle = runs.flatMap((r) => r.idleLatencyMs);
  const p99 = percentile(during, 99);
  const idleP99 = percentile(idle, 99);
  const info = infoFigure;
  const agentCpu = runs.map((r) =>
    (r.cpu.processes.source?.total ?? NaN) + (r.cpu.processes.destination?.total ?? NaN)
  );
  const rawCpu = runs.map((r) => r.rawTcp.sourceCpuMs + r.rawTcp.sinkCpuMs);
  return [
    {
      id: "A.throughput",
      figure: "A: 1 GiB random, TCP (transferred / (total − setup))",
      value: median(agent),
      unit: "GB/s",
      baseline: median(tcp),
      baselineName: "raw Deno TCP, 1 MiB writes",
      ratio: ratioA,
      target: "ratio ≥ 0.8",
      pass: ratioA >= 0.8,
    },
    {
      id: "A.wall",
      figure: "A: same, wall clock POST → source completed",
      value: median(wall),
      unit: "GB/s",
      baseline: median(tcp),
      baselineName: "raw Deno TCP, 1 MiB writes",
      ratio: median(runs.map((r) => r.wallBytesPerSec / r.rawTcp.bytesPerSec)),
      target: null,
      pass: null,
    },
    {
      id: "raw.tcp1g",
      figure: "raw Deno TCP through 1 GiB buffers (memory-bound)",
      value: median(runs.map((r) => r.rawTcpSpan.bytesPerSec / GB)),
      unit: "GB/s",
      baseline: median(tcp),
      baselineName: "raw Deno TCP, 1 MiB writes",
      ratio: median(runs.map((r) => r.rawTcpSpan.bytesPerSec / r.rawTcp.bytesPerSec)),
      target: null,
      pass: null,
    },
    {
      id: "raw.unix",
      figure: "raw Deno unix socket, 1 MiB writes",
      value: median(unix),
      unit: "GB/s",
      baseline: median(tcp),
      baselineName: "raw Deno TCP, 1 MiB writes",
      ratio: median(runs.map((r) => r.rawUnix.bytesPerSec / r.rawTcp.bytesPerSec)),
      target: null,
      pass: null,
    },
    info("A.total", "A: total-time", median(runs.map((r) => r.info["total-time"])), "ms"),
    info("A.downtime", "A: downtime", median(runs.map((r) => r.info.downtime)), "ms"),
    info("A.dest", "A: POST → destination completed", median(runs.map((r) => r.destWallMs)), "ms"),
    {
      id: "A.cpu",
      figure: "A: CPU of both agents, POST → destination completed",
      value: median(agentCpu),
      unit: "ms",
      baseline: median(rawCpu),
      baselineName: "CPU of both raw TCP processes",
      ratio: median(agentCpu.map((c, i) => c / rawCpu[i])),
      target: null,
      pass: null,
    },
    info(
      "A.others",
      "A: CPU of all other processes during A (noise)",
      median(runs.map((r) => (r.cpu.otherMs ?? NaN) / r.cpu.wallMs)),
      "cores",
    ),
    {
      id: "C.p99",
      figure: `C: GET /migrations/current p99 during a 1 GiB migration (n=${during.length})`,
      value: p99,
      unit: "ms",
      baseline: idleP99,
      baselineName: `same GET, idle source, p99 (n=${idle.length})`,
      ratio: p99 / idleP99,
      target: "< 20 ms",
      pass: p99 < 20,
    },
    info("C.p50", "C: GET p50 during the migration", percentile(during, 50), "ms"),
    info(
      "C.max",
      "C: GET max during the migration",
      during.length ? Math.max(...during) : NaN,
      "ms",
    ),
    ...rssFigures(
      "A",
      "A",
      runs.map((r) => r.rss),
      2 ** 30 + 128 * 2 ** 20,
      "guest RAM + 128 MiB (no xbzrle cache)",
    ),
  ];
}

/** The figures of scenario B. */
export function figuresB(runs: readonly ScenarioBRun[]): Figure[] {
  if (runs.length === 0) return [];
  const scan = median(runs.map((r) => r.zeroScanMs));
  const row = (id: string, figure: string, xs: number[]): Figure => {
    const value = median(xs);
    return {
      id,
      figure,
      value,
      unit: "ms",
      baseline: scan,
      baselineName: "JS zero scan of a fresh 1 GiB buffer",
      ratio: value / scan,
      target: "< 500 ms",
      pass: value < 500,
    };
  };
  return [
    row("B.wall", "B: 1 GiB zero, POST → destination completed", runs.map((r) => r.wallMs)),
    row("B.total", "B: 1 GiB zero, source total-time", runs.map((r) => r.totalTime)),
  ];
}

function num(x: number | null, digits = 2): string {
  if (x === null) return "";
  if (!Number.isFinite(x)) return String(x);
  return x >= 100 ? x.toFixed(0) : x.toFixed(digits);
}

/** Renders figures as an aligned text table. */
export function renderTable(figures: readonly Figure[]): string {
  const head = ["figure", "value", "baseline", "ratio", "target", "result"];
  const rows = figures.map((f) => [
    f.figure,
    `${num(f.value)} ${f.unit}`,
    f.baseline === null ? "" : `${num(f.baseline)} ${f.unit} (${f.baselineName})`,
    num(f.ratio),
    f.target ?? "",
    f.pass === null ? "info" : f.pass ? "PASS" : "FAIL",
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells: string[]) => cells.map((c, i) => c.padEnd(widths[i])).join(" | ");
  return [line(head), widths.map((w) => "-".repeat(w)).join("-+-"), ...rows.map(line)].join("\n");
}
