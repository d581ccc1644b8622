/**
 * `deno task bench`: runs the scenarios with fresh agents per repetition, prints a table of
 * figures (each against a baseline measured in the same run) and writes the JSON to
 * bench/results/<date>.json and bench/results/latest.json. A missed target is reported,
 * not an error: the exit code is non-zero only when something crashed.
 *
 * Scenarios: A (+C) 1 GiB over TCP, B 1 GiB zero guest, P postcopy, M multifd over unix,
 * D the disk (bench/disk.ts), X XBZRLE, V auto-converge, O COLO (bench/colo.ts), W a
 * WebAssembly guest under its client (bench/wasm_guests.ts), L load
 * (bench/load.ts), U
 * micro-measurements in one process (bench/micro.ts).
 *
 * Options: --reps N (default 3; L runs --load-reps times, default 9), --rate R (scenario C's
 * GETs per second, 0 = back to back; default 200), --only LIST (comma-separated scenario
 * letters or names, e.g. `--only A,postcopy`), --load-sched other|idle|idle-api|idle-client
 * (L's what-ifs, see bench/load.ts).
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  type AutoConvergeRun,
  autoConvergeScenario,
  CONTROL_MS,
  figuresAutoConverge,
} from "./auto_converge.ts";
import {
  figuresLoad,
  LOAD_SCHEDS,
  loadCpuMs,
  type LoadRun,
  loadScenario,
  type LoadSched,
} from "./load.ts";
import { type ColoRateRun, coloScenario, figuresColo } from "./colo.ts";
import { hostLabel, hostPages } from "./limit.ts";
import { percentile, type QuietWait } from "./measure.ts";
import { type DiskMigration, type DiskRun, diskScenario, figuresDisk } from "./disk.ts";
import type { RawResult } from "./raw.ts";
import { figuresMicro, type MicroRun, microScenario } from "./micro.ts";
import { figuresMultifd, type MultifdRun, multifdScenario } from "./multifd.ts";
import { figuresPostcopy, type PostcopyRun, postcopyScenario } from "./postcopy.ts";
import { type Figure, figuresA, figuresB, renderTable } from "./report.ts";
import { scenarioA, type ScenarioARun, scenarioB, type ScenarioBRun } from "./scenarios.ts";
import { figuresXbzrle, type XbzrleRun, xbzrleScenario } from "./xbzrle.ts";
import { figuresWasmGuests, type WasmGuestRun, wasmGuestScenario } from "./wasm_guests.ts";
import { type ComputeRun, computeScenario, figuresWasmCompute, lostMs } from "./wasm_compute.ts";

/** Scenario letters in the order they run, and the names `--only` also accepts. */
export const SCENARIOS: Readonly<Record<string, string[]>> = {
  A: ["a", "c", "throughput"],
  B: ["b", "zero"],
  P: ["p", "postcopy"],
  M: ["m", "multifd"],
  D: ["d", "disk"],
  X: ["x", "xbzrle"],
  V: ["v", "auto-converge", "autoconverge"],
  O: ["o", "colo"],
  W: ["w", "wasm"],
  L: ["l", "load"],
  U: ["u", "micro"],
};

/** Parses `--only` into scenario letters (all of them when absent). */
export function selectScenarios(only: string | undefined): Set<string> {
  if (only === undefined) return new Set(Object.keys(SCENARIOS));
  const picked = new Set<string>();
  for (const word of only.split(",").map((w) => w.trim().toLowerCase()).filter(Boolean)) {
    const letter = Object.keys(SCENARIOS).find((k) => SCENARIOS[k].includes(word));
    if (!letter) {
      throw new Error(`--only: unknown scenario '${word}' (one of ${Object.keys(SCENARIOS)})`);
    }
    picked.add(letter);
  }
  return picked;
}

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
    pages: hostPages(),
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
    `raw tcp ${gbps(r.rawTcp.bytesPerSec)} GB/s, through 1 GiB 4k ${
      gbps(r.limit.small.bytesPerSec)
    } huge ${gbps(r.limit.huge.bytesPerSec)}, unix ${gbps(r.rawUnix.bytesPerSec)}`,
    `destination ready in ${r.destReady.wallMs.toFixed(0)} ms (RAM ${r.destReady.ramReadyMs} ms, ` +
    `page size ${r.destReady.pageSize})`,
    `migration ${gbps(r.agentBytesPerSec)} GB/s (total ${r.info["total-time"]} ms, setup ${
      r.info["setup-time"]
    }, downtime ${r.info.downtime}), wall ${r.wallMs.toFixed(0)} ms`,
    `C: GET p99 ${r.latency.p99.toFixed(1)} ms (n=${r.latency.n}) in a second migration`,
    `CPU ms ${cpu}, irq ${r.cpu.irqMs}, others ${r.cpu.otherMs}, stolen by the host ${r.cpu.stealMs} in ${
      r.cpu.wallMs.toFixed(0)
    } ms`,
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

function logP(i: number, r: PostcopyRun): void {
  console.error(
    `P#${i + 1}: ${quiet(r.quiet)}; start-postcopy → destination running ${
      r.switchMs.toFixed(1)
    } ms (${r.machinePolls} polls); package ${r.packageBytes} B; downtime ${r.source.downtime} ms; ` +
      `total ${r.source["total-time"]} ms; blocktime ${r.destination["postcopy-blocktime"]} ms`,
  );
}

function logM(i: number, r: MultifdRun): void {
  console.error(
    `M#${i + 1}: ${quiet(r.quiet)}; raw unix ${
      gbps(r.rawUnix.bytesPerSec)
    } GB/s, through 1 GiB 4k ${gbps(r.limit.small.bytesPerSec)} huge ${
      gbps(r.limit.huge.bytesPerSec)
    }; multifd ${gbps(r.bytesPerSec)} GB/s (total ${r.info["total-time"]} ms, setup ${
      r.info["setup-time"]
    }, downtime ${r.info.downtime}); one channel ${gbps(r.singleBytesPerSec)} GB/s`,
  );
}

function logD(i: number, r: DiskRun): void {
  const raw = (x: RawResult) =>
    `raw ${gbps(x.bytesPerSec)} GB/s (CPU ${(x.sinkCpuMs + x.sourceCpuMs).toFixed(0)} ms)`;
  const mig = (m: DiskMigration) =>
    `migration ${gbps(m.bytesPerSec)} GB/s (total ${m.info["total-time"]} ms, setup ${
      m.info["setup-time"]
    }, downtime ${m.info.downtime}, wall ${m.wallMs.toFixed(0)}, CPU ${m.cpuMs} ms)`;
  console.error(
    `D#${i + 1}: ${quiet(r.quiet)}; ${raw(r.raw[0])}, ${mig(r.migrations[0])}, ${
      mig(r.migrations[1])
    }, ${raw(r.raw[1])}; RAM + disk ${r.withDiskMs} ms, RAM alone ${r.ramAloneMs} ms`,
  );
}

function logX(i: number, r: XbzrleRun): void {
  console.error(
    `X#${i + 1}: ${quiet(r.quiet)}; plain ${r.plain.bytesPerPage.toFixed(1)} B/page; xbzrle ${
      r.xbzrleBytesPerPage.toFixed(1)
    } B/page (window ${r.xbzrle.bytesPerPage.toFixed(1)}); RSS MiB ${
      Object.entries(r.rss).map(([k, v]) => `${k} ${(v.hwmKiB / 1024).toFixed(0)}`).join(", ")
    }`,
  );
}

function logV(label: string, r: AutoConvergeRun): void {
  console.error(
    `${label}: ${quiet(r.quiet)}; ${r.converged ? "completed" : r.info.status}; total ${
      r.info["total-time"] ?? "-"
    } ms, downtime ${r.info.downtime ?? "-"} ms; throttle steps ${JSON.stringify(r.throttleSteps)}`,
  );
}

function logU(i: number, r: MicroRun): void {
  const gb = (x: number) => (x / 1e9).toFixed(2);
  console.error(
    `U#${i + 1}: channels ${
      Object.entries(r.channels).map(([k, v]) => `${k} ${gb(v)}`).join(", ")
    } GB/s; FrameReader ${Object.values(r.frameReader).map(gb).join(" / ")} GB/s; xbzrle ${
      gb(r.xbzrle.encode)
    } / ${gb(r.xbzrle.decode)} GB/s; vCPU M pages/s ${(r.vcpu.off / 1e6).toFixed(1)} off, ${
      (r.vcpu.on / 1e6).toFixed(1)
    } on`,
  );
}

function logO(i: number, runs: ColoRateRun[]): void {
  for (const r of runs) {
    const sorted = [...r.pauses].sort((a, b) => a - b);
    const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
    console.error(
      `O#${i + 1} ${r.rate} pages/s: ${quiet(r.quiet)}; pause p50 ${at(0.5)?.toFixed(2)} p99 ${
        at(0.99)?.toFixed(2)
      } max ${sorted.at(-1)?.toFixed(2)} ms (${r.pauses.length} of ${r.checkpoints} checkpoints; ` +
        `agent's p50 ${r.colo["pause-p50-ms"]} p99 ${r.colo["pause-p99-ms"]}); ${
          (r.bytes / Math.max(1, r.checkpoints) / 1024).toFixed(0)
        } KiB per checkpoint; progress ${r.coloRate.toFixed(0)} / ${
          r.aloneRate.toFixed(0)
        } pages/s`,
    );
  }
}

function logW(i: number, runs: WasmGuestRun[]): void {
  for (const r of runs) {
    const p = (xs: number[], q: number) => percentile(xs, q).toFixed(1);
    console.error(
      `W#${i + 1} kvstore ${r.ramMiB} MiB: ${quiet(r.quiet)}; total ${r.info["total-time"]} ms, ` +
        `downtime ${r.info.downtime} ms; answers ${r.answered} of ${r.sent}; latency alone p50 ` +
        `${p(r.alone, 50)} p99 ${p(r.alone, 99)}, during p50 ${p(r.during, 50)} p99 ${
          p(r.during, 99)
        } ms`,
    );
  }
}

function logWCompute(i: number, runs: ComputeRun[]): void {
  for (const r of runs) {
    const ended = r.converged
      ? `total ${r.info["total-time"]} ms, downtime ${r.info.downtime} ms`
      : `did not converge: ${r.info.status}`;
    console.error(
      `W#${i + 1} compute ${r.ramMiB} MiB (array ${r.arrayMiB} MiB): ${
        quiet(r.quiet)
      }; ${ended}; ` +
        `round ms alone ${r.alone.join(", ")}, during ${r.during.join(", ")}: ${
          lostMs(r).toFixed(0)
        } ms lost; rounds continuous: ${r.continuous}`,
    );
  }
}

function logL(i: number, r: LoadRun): void {
  console.error(
    `L#${i + 1}: alone ${r.aloneMs} ms, loaded ${r.loadedMs} ms (ratio ${r.ratio.toFixed(2)}); ` +
      `GET p99 ${r.polls.p99.toFixed(1)} ms at ${r.polls.rateDuring.toFixed(0)}/s; load's CPU: ` +
      `agent main ${loadCpuMs(r, (c) => c.agentMainMs).toFixed(0)} ms, client ` +
      `${loadCpuMs(r, (c) => c.clientMs).toFixed(0)} ms, irq ${
        loadCpuMs(r, (c) => c.irqMs).toFixed(0)
      } ms`,
  );
}

/** Runs `n` repetitions of `scenario` if `letter` is selected, logging each. */
async function repeat<T>(
  picked: Set<string>,
  letter: string,
  n: number,
  scenario: () => Promise<T>,
  log: (i: number, r: T) => void,
): Promise<T[]> {
  const runs: T[] = [];
  for (let i = 0; i < n && picked.has(letter); i++) {
    runs.push(await scenario());
    log(i, runs[i]);
  }
  return runs;
}

/** Runs the bench; returns the figures. */
export async function main(args: string[]): Promise<Figure[]> {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string", default: "3" },
      "load-reps": { type: "string", default: "9" },
      rate: { type: "string", default: "200" },
      only: { type: "string" },
      "load-sched": { type: "string", default: "other" },
    },
  });
  const reps = Number(values.reps);
  const loadReps = Number(values["load-reps"]);
  const rate = Number(values.rate);
  if (!(reps >= 1) || !(loadReps >= 1) || !(rate >= 0)) {
    throw new Error("--reps and --load-reps must be ≥ 1 and --rate ≥ 0");
  }
  const loadSched = values["load-sched"];
  if (!LOAD_SCHEDS.includes(loadSched as LoadSched)) {
    throw new Error(`--load-sched is one of ${LOAD_SCHEDS} (what-ifs; see bench/load.ts)`);
  }
  const picked = selectScenarios(values.only);
  const started = new Date();
  const host = machine();
  const pages = hostPages();
  console.error(`machine: ${JSON.stringify(host)}; scenarios ${[...picked].join(",")}`);
  const a = await repeat(picked, "A", reps, () => scenarioA(rate), logA);
  const b = await repeat(picked, "B", reps, scenarioB, logB);
  const p = await repeat(picked, "P", reps, postcopyScenario, logP);
  const m = await repeat(picked, "M", reps, multifdScenario, logM);
  const d = await repeat(picked, "D", reps, diskScenario, logD);
  const x = await repeat(picked, "X", reps, xbzrleScenario, logX);
  const v = await repeat(picked, "V", reps, () => autoConvergeScenario(), (i, r) => {
    logV(`V#${i + 1}`, r);
  });
  const vControl = await repeat(
    picked,
    "V",
    1,
    () => autoConvergeScenario({ control: true, timeoutMs: CONTROL_MS }),
    (_, r) => logV("V control (auto-converge off)", r),
  );
  const o = await repeat(picked, "O", reps, coloScenario, logO);
  const w = await repeat(picked, "W", reps, wasmGuestScenario, logW);
  const wCompute = await repeat(picked, "W", reps, computeScenario, logWCompute);
  let loadRep = 0;
  const l = await repeat(
    picked,
    "L",
    loadReps,
    () =>
      loadScenario({
        loadedFirst: loadRep++ % 2 === 1,
        sched: loadSched as LoadSched,
      }),
    logL,
  );
  const u = await repeat(picked, "U", reps, microScenario, logU);
  const figures = [
    ...figuresA(a, hostLabel(pages)),
    ...figuresB(b),
    ...figuresPostcopy(p),
    ...figuresMultifd(m, hostLabel(pages)),
    ...figuresDisk(d),
    ...figuresXbzrle(x),
    ...figuresAutoConverge(v, vControl),
    ...figuresColo(o),
    ...figuresWasmGuests(w),
    ...figuresWasmCompute(wCompute),
    ...figuresLoad(l),
    ...figuresMicro(u),
  ];
  console.log(
    `\nFerry bench — ${host.nproc} cores (${host.cpu}), Deno ${host.deno}; ` +
      `${hostLabel(pages)}; medians of ${reps} repetitions, L: ${loadReps} (C pools every ` +
      `sample; ratios are medians of per-repetition ratios)\n`,
  );
  console.log(renderTable(figures));
  const doc = {
    date: started.toISOString(),
    durationMs: Date.now() - started.getTime(),
    machine: host,
    options: { reps, loadReps, pollRate: rate, only: values.only ?? null, loadSched },
    figures,
    runs: {
      A: a,
      B: b,
      P: p,
      M: m,
      D: d,
      X: x,
      V: v,
      VControl: vControl,
      O: o,
      W: w,
      WCompute: wCompute,
      L: l,
      U: u,
    },
  };
  await Deno.mkdir(RESULTS, { recursive: true });
  const text = JSON.stringify(doc, null, 2) + "\n";
  const name = `${started.toISOString().replace(/:/g, "-")}.json`;
  await Deno.writeTextFile(new URL(name, RESULTS), text);
  await Deno.writeTextFile(new URL("latest.json", RESULTS), text);
  console.log(
    `\nwrote bench/results/${name} and bench/results/latest.json (${
      ((Date.now() - started.getTime()) / 1000).toFixed(0)
    } s)`,
  );
  return figures;
}

if (import.meta.main) await main(Deno.args);
