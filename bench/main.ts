/**
 * `deno task bench`: runs scenarios A (+C) and B with fresh agents per repetition, prints a
 * table of figures (each against a baseline measured in the same run) and writes the JSON
 * to bench/results/<date>.json and bench/results/latest.json. A missed target is reported,
 * not an error: the exit code is non-zero only when something crashed.
 *
 * Options: --reps N (default 3), --rate R (scenario C's GETs per second, 0 = back to back;
 * default 200), --only A|B.
 *
 * @module
 */
import { parseArgs } from "node:util";
import type { QuietWait } from "./measure.ts";
import { type Figure, figuresA, figuresB, renderTable } from "./report.ts";
import { scenarioA, type ScenarioARun, scenarioB, type ScenarioBRun } from "./scenarios.ts";

const RESULTS = new URL("./results/", import.meta.url);

/** The machine the figures were measured on. */
function machine(): Record<string, unknown> {
  let cpuModel = "";
  try {
    // Through sh: Deno wants --allow-all to read /proc itself.
    const r = new Deno.Command("sh", { args: ["-c", "cat /proc/cpuinfo"], stderr: "null" })
      .outputSync();
    cpuModel = /model name\s*:\s*(.*)/.exec(new TextDecoder().decode(r.stdout))?.[1] ?? "";
  } catch { /* not Linux */ }
  return {
    nproc: navigator.hardwareConcurrency,
    cpu: cpuModel,
    deno: Deno.version.deno,
    v8: Deno.version.v8,
    os: `${Deno.build.os} ${Deno.osRelease()}`,
    loadavg: Deno.loadavg(),
  };
}

function gbps(x: number): string {
  return (x / 1e9).toFixed(2);
}

function quiet(q: QuietWait): string {
  return `machine ${q.busyCores.toFixed(2)} cores busy after ${q.waitedMs.toFixed(0)} ms wait`;
}

function logA(i: number, r: ScenarioARun): void {
  const cpu = Object.entries(r.cpu.processes).map(([k, v]) => `${k} ${v.total}`).join(", ");
  const parts = [
    quiet(r.quiet),
    `raw tcp ${gbps(r.rawTcp.bytesPerSec)} GB/s, through 1 GiB ${
      gbps(r.rawTcpSpan.bytesPerSec)
    }, unix ${gbps(r.rawUnix.bytesPerSec)}`,
    `migration ${gbps(r.agentBytesPerSec)} GB/s (total ${r.info["total-time"]} ms, setup ${
      r.info["setup-time"]
    }, downtime ${r.info.downtime}), wall ${r.wallMs.toFixed(0)} ms`,
    `GET p99 ${r.latency.p99.toFixed(1)} ms (n=${r.latency.n})`,
    `CPU ms ${cpu}, irq ${r.cpu.irqMs}, others ${r.cpu.otherMs} in ${r.cpu.wallMs.toFixed(0)} ms`,
  ];
  console.error(`A#${i + 1}: ${parts.join("; ")}`);
}

function logB(i: number, r: ScenarioBRun): void {
  const parts = [
    quiet(r.quiet),
    `zero scan ${r.zeroScanMs.toFixed(0)} ms`,
    `total-time ${r.totalTime} ms, POST → destination completed ${r.wallMs.toFixed(0)} ms`,
  ];
  console.error(`B#${i + 1}: ${parts.join("; ")}`);
}

/** Runs the bench; returns the figures. */
export async function main(args: string[]): Promise<Figure[]> {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string", default: "3" },
      rate: { type: "string", default: "200" },
      only: { type: "string" },
    },
  });
  const reps = Number(values.reps);
  const rate = Number(values.rate);
  if (!(reps >= 1) || !(rate >= 0)) throw new Error("--reps must be ≥ 1 and --rate ≥ 0");
  const started = new Date();
  const host = machine();
  console.error(`machine: ${JSON.stringify(host)}`);
  const a: ScenarioARun[] = [];
  const b: ScenarioBRun[] = [];
  for (let i = 0; i < reps && values.only !== "B"; i++) {
    a.push(await scenarioA(rate));
    logA(i, a[i]);
  }
  for (let i = 0; i < reps && values.only !== "A"; i++) {
    b.push(await scenarioB());
    logB(i, b[i]);
  }
  const figures = [...figuresA(a), ...figuresB(b)];
  console.log(
    `\nFerry bench — ${host.nproc} cores (${host.cpu}), Deno ${host.deno}; ` +
      `medians of ${reps} repetitions (C pools every sample; ratios of A are medians of ` +
      `per-repetition ratios)\n`,
  );
  console.log(renderTable(figures));
  const doc = {
    date: started.toISOString(),
    durationMs: Date.now() - started.getTime(),
    machine: host,
    options: { reps, pollRate: rate, only: values.only ?? null },
    figures,
    runs: { A: a, B: b },
  };
  await Deno.mkdir(RESULTS, { recursive: true });
  const text = JSON.stringify(doc, null, 2) + "\n";
  const name = `${started.toISOString().replace(/:/g, "-")}.json`;
  await Deno.writeTextFile(new URL(name, RESULTS), text);
  await Deno.writeTextFile(new URL("latest.json", RESULTS), text);
  console.log(`\nwrote bench/results/${name} and bench/results/latest.json`);
  return figures;
}

if (import.meta.main) await main(Deno.args);
