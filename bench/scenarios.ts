/**
 * The bench's scenarios, each one repetition with fresh agents:
 * - A: a 1 GiB random idle guest over loopback TCP at unlimited bandwidth, judged against the
 *   host's memory-to-memory limit (bench/limit.ts: raw TCP pairs through touched 1 GiB buffers
 *   on 4 KiB and on huge pages, the better one, measured before the agents start and again right
 *   after the migration, averaged), with the raw unix socket, the same pairs in one process and
 *   cache-hot raw TCP (median of three) as references, measured in that order after C
 *   (scenarioA says why); the destination starts alone first, timed to `ready` (listening, RAM
 *   pre-touched); the bench learns that it is over from both agents' event streams (scenarioA says why it
 *   does not poll); the agents' peak resident memory (VmHWM) read at the end.
 * - C: the same migration with fresh agents while a client polls `GET /migrations/current`
 *   at `--rate` (200/s), and the same GET on the idle source before it as C's baseline.
 * - B: a 1 GiB all-zero idle guest, with an in-process 1 GiB zero scan as its baseline.
 *
 * @module
 */
import { type BenchAgent, type Json, startAgent, withAgents } from "./agent.ts";
import { migrateAndFollow } from "./kit.ts";
import {
  type CpuSample,
  percentile,
  type QuietWait,
  sampleCpu,
  waitForQuiet,
  wallNow,
} from "./measure.ts";
import { bracketLimit, measureLimit, type MemoryLimit } from "./limit.ts";
import { pollFor, type PollResult, pollUntil } from "./poller.ts";
import {
  type OneProcessResult,
  type RawResult,
  runRaw,
  runRawMedian,
  runRawOneProcess,
} from "./raw.ts";
import { type RssPeak, watchRss } from "./rss.ts";

/** Guest size, and the bytes each raw baseline moves. */
export const GIB = 2 ** 30;
/** Write size of the raw baseline: the engine's ~1 MiB frames. */
export const CHUNK = 2 ** 20;
const TERMINAL = /^(completed|failed|cancelled)$/;

/** p50 / p99 / max of a set of latencies, in ms. */
export interface LatencySummary {
  n: number;
  p50: number;
  p99: number;
  max: number;
}

/** One repetition of scenario A (and C). */
export interface ScenarioARun {
  /** How long the machine took to go quiet before the repetition, and how busy it was. */
  quiet: QuietWait;
  /** Raw TCP from/into one cache-hot 1 MiB buffer: a reference (measured last, after C). */
  rawTcp: RawResult;
  /** The host's limit over TCP: raw pairs through touched 1 GiB buffers, 4 KiB and huge pages. */
  limit: MemoryLimit;
  rawUnix: RawResult;
  /**
   * The same bytes between two touched 1 GiB buffers in ONE process, 4 KiB and huge pages (the
   * pair ../shared/acceptance/lib/raw_pair.ts measures): a reference, not the limit.
   */
  oneProcess: { small: OneProcessResult; huge: OneProcessResult };
  /** The destination: start → ready (listening, RAM pre-touched), and what it said of its RAM. */
  destReady: AgentReady;
  /** The source's page size asked for RAM (x-ram-backing), and its downtime-limit. */
  sourcePageSize: number;
  downtimeLimit: number;
  /** GET /migrations/current on the idle source before the POST (C's baseline), ms. */
  idleLatency: LatencySummary;
  idleLatencyMs: number[];
  /** The source's MigrationInfo once completed. */
  info: Json;
  /** ram.transferred / (total-time − setup-time), bytes per second. */
  agentBytesPerSec: number;
  /** POST sent → source seen completed, ms; and ram.transferred over it. */
  wallMs: number;
  wallBytesPerSec: number;
  /** POST sent → destination seen completed, ms. */
  destWallMs: number;
  /** Scenario C: latencies during the migration, ms. */
  latency: LatencySummary;
  latencyMs: number[];
  pollErrors: number;
  /** CPU time per process and thread from the POST to the destination's completion. */
  cpu: CpuSample;
  /** Peak RSS of both agents (VmHWM read after the destination's completion). */
  rss: Record<string, RssPeak>;
}

/** How an agent came up: wall time from spawning it to its `listening` line, and its RAM. */
export interface AgentReady {
  /** Spawn → listening, ms (Deno's start, the page-size decision, RAM, the incoming socket). */
  wallMs: number;
  /** The agent's own time to allocate, advise and pre-touch or fill RAM (`ram-ready-ms`). */
  ramReadyMs: number | null;
  /** The page size asked for RAM and the bytes huge pages backed then (its log line). */
  pageSize: number | null;
  hugePageBytes: number | null;
}

/** Reads an agent's `guest RAM pages` log line. */
export function agentReady(log: string, wallMs: number): AgentReady {
  const line = log.split("\n").find((l) => l.includes('"msg":"guest RAM pages"'));
  const j = line ? JSON.parse(line) : {};
  return {
    wallMs,
    ramReadyMs: j["ram-ready-ms"] ?? null,
    pageSize: j["page-size"] ?? null,
    hugePageBytes: j["huge-page-bytes"] ?? null,
  };
}

/** One repetition of scenario B. */
export interface ScenarioBRun {
  quiet: QuietWait;
  /** Scanning a fresh 1 GiB buffer for zero pages in the bench process, ms. */
  zeroScanMs: number;
  info: Json;
  /** The source's total-time, ms. */
  totalTime: number;
  /** POST sent → destination seen completed, ms. */
  wallMs: number;
  cpu: CpuSample;
}

/** Summarises latencies. */
export function summarize(ms: readonly number[]): LatencySummary {
  return {
    n: ms.length,
    p50: percentile(ms, 50),
    p99: percentile(ms, 99),
    max: ms.length ? Math.max(...ms) : NaN,
  };
}

function round3(x: number): number {
  return Math.round(x * 1000) / 1000;
}

/** The source's info once it is completed and its counters are final (total-time set). */
async function settledInfo(src: { base: string }): Promise<Json> {
  const info = await pollFor(
    src.base,
    "/migrations/current",
    (b) => b.status !== "completed" || b["total-time"] > 0,
    5000,
    10,
  );
  if (info.status !== "completed") {
    throw new Error(`migration ended ${info.status}: ${info["error-desc"] ?? ""}`);
  }
  return info;
}

/**
 * Starts a destination (alone, timed to ready) and then a source (`fill`) of 1 GiB each, idle
 * vCPU, unlimited bandwidth; returns them with the source's downtime-limit.
 */
async function pair(
  track: (a: ReturnType<typeof startAgent>) => ReturnType<typeof startAgent>,
  fill: string,
) {
  const t0 = wallNow();
  const dst = await track(startAgent(["--ram", "1G", "--incoming", "tcp:127.0.0.1:0"]));
  const destReady = agentReady(dst.log(), wallNow() - t0);
  const src = await track(startAgent(["--ram", "1G", "--fill", fill, "--workload", "idle"]));
  const p = await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
  if (p.status !== 200) throw new Error(`PATCH /parameters: ${p.status}`);
  if (!dst.incomingUri) throw new Error("destination has no incoming URI");
  const downtimeLimit = (await src.api("GET", "/parameters")).body["downtime-limit"] as number;
  const sourcePageSize = (await src.api("GET", "/machine")).body["x-ram-backing"]["page-size"];
  return { dst, src, uri: dst.incomingUri, destReady, downtimeLimit, sourcePageSize };
}

/** Starts the migration and polls the source at `rate` until it completed (else throws). */
async function migrateAndPoll(src: BenchAgent, uri: string, rate: number): Promise<PollResult> {
  const r = await src.api("POST", "/migrations", { uri });
  if (r.status !== 202) throw new Error(`POST /migrations: ${r.status} ${JSON.stringify(r.body)}`);
  const poll = await pollUntil(src.base, { rate, timeoutMs: 60_000, terminal: TERMINAL });
  if (poll.last?.status !== "completed") {
    throw new Error(`migration ended ${poll.last?.status}: ${poll.last?.["error-desc"] ?? ""}`);
  }
  return poll;
}

/**
 * Scenario A with C: see the module doc. `pollRate` is C's requests per second (0 = back to
 * back). A's throughput run and C's latency run are two migrations with fresh agents: a
 * client polling at 200/s is a load of its own, which the raw baseline does not carry.
 *
 * The limit's pairs are measured before the agents start, not between their start and the POST:
 * each pair moves 1 GiB between two buffers touched just before, while a guest filled before
 * them sat through them, and on this project's kind of host (a VM whose kernel hands freed memory
 * back to its host: `page_reporting`) a guest's RAM was slower to read and write after gigabytes of
 * other memory came and went meanwhile. Measured 2026-12-07 (a 1 GiB random idle guest over
 * loopback TCP, fresh agents, 8 alternating rounds): 5.51 GB/s migrated right after the agents'
 * start, 5.16 after six raw 1 GiB pairs in between, 5.53 when both agents then read all their RAM
 * once more (GET /machine/digest) before the POST; the slow runs cost the agents more CPU.
 * Baselines and migration each run right after their own memory was touched.
 *
 * Only the limit's two pairs come before the agents, and the same two again right after the
 * migration (the limit is their mean: limit.ts bracketLimit); the reference pairs (unix, one
 * process, cache-hot) come after both migrations: raw pairs before the agents' start slow the
 * migration too. Measured 2026-12-07 (same guest, 8 alternating rounds): 5.77 GB/s with none
 * before the agents started, 5.37 after six (a raw pair then 6.17).
 */
export async function scenarioA(pollRate: number): Promise<ScenarioARun> {
  // The limit first, then the agents (see above); the references after both migrations.
  const quiet = await waitForQuiet();
  const before = await measureLimit("tcp", GIB, CHUNK);
  const a = await withAgents(async (track) => {
    const { dst, src, uri, destReady, downtimeLimit, sourcePageSize } = await pair(
      track,
      "random",
    );
    await waitForQuiet(); // the agents' start (their data paths warm up) is over
    const rss = watchRss({ source: src.pid, destination: dst.pid });
    const cpu = sampleCpu({ source: src.pid, destination: dst.pid, bench: Deno.pid });
    const t0 = wallNow();
    const ends = await migrateAndFollow(src, dst, uri);
    const cpuUsed = cpu();
    const peaks = await rss.stop();
    const info = await settledInfo(src);
    const transferred = info.ram.transferred;
    const wallMs = ends.sourceAt - t0;
    const destAt = ends.destAt;
    return {
      quiet,
      destReady,
      sourcePageSize,
      downtimeLimit,
      info,
      agentBytesPerSec: transferred / ((info["total-time"] - info["setup-time"]) / 1000),
      wallMs,
      wallBytesPerSec: transferred / (wallMs / 1000),
      destWallMs: destAt - t0,
      cpu: cpuUsed,
      rss: peaks,
    };
  });
  const limit = bracketLimit(before, await measureLimit("tcp", GIB, CHUNK));
  const c = await withAgents(async (track) => {
    const { src, uri } = await pair(track, "random");
    await waitForQuiet();
    const idle = await pollUntil(src.base, { rate: pollRate, timeoutMs: 500, terminal: /^$/ });
    return { idle, poll: await migrateAndPoll(src, uri, pollRate) };
  });
  const rawUnix = await runRaw("unix", GIB, CHUNK);
  const oneProcess = {
    small: await runRawOneProcess(GIB, CHUNK, "4k"),
    huge: await runRawOneProcess(GIB, CHUNK, "huge"),
  };
  const rawTcp = await runRawMedian("tcp", GIB, CHUNK);
  return {
    ...a,
    limit,
    rawUnix,
    oneProcess,
    rawTcp,
    idleLatency: summarize(c.idle.latencies),
    idleLatencyMs: c.idle.latencies.map(round3),
    latency: summarize(c.poll.latencies),
    latencyMs: c.poll.latencies.map(round3),
    pollErrors: c.poll.errors,
  };
}

/** Milliseconds to check a fresh `bytes`-byte buffer page by page for zeros (JS, ×16 OR). */
export function zeroScanMs(bytes: number): number {
  const w = new Uint32Array(new SharedArrayBuffer(bytes));
  const t0 = performance.now();
  let zero = 0;
  for (let page = 0; page < w.length; page += 1024) {
    let acc = 0;
    for (let i = page; i < page + 1024; i += 16) {
      acc |= w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7] |
        w[i + 8] | w[i + 9] | w[i + 10] | w[i + 11] | w[i + 12] | w[i + 13] | w[i + 14] | w[i + 15];
      if (acc !== 0) break;
    }
    if (acc === 0) zero++;
  }
  const ms = performance.now() - t0;
  if (zero !== w.length / 1024) throw new Error("fresh memory was not zero");
  return ms;
}

/** Scenario B: see the module doc. */
export function scenarioB(): Promise<ScenarioBRun> {
  return withAgents(async (track) => {
    const { dst, src, uri } = await pair(track, "zero");
    const quiet = await waitForQuiet();
    const zeroScan = zeroScanMs(GIB);
    const cpu = sampleCpu({ source: src.pid, destination: dst.pid });
    const t0 = wallNow();
    const r = await src.api("POST", "/migrations", { uri });
    if (r.status !== 202) {
      throw new Error(`POST /migrations: ${r.status} ${JSON.stringify(r.body)}`);
    }
    // Every 2 ms: back to back would take a core from the migration on a small machine.
    await pollFor(dst.base, "/migrations/current", (b) => TERMINAL.test(b.status), 30_000, 2);
    const wallMs = wallNow() - t0;
    const cpuUsed = cpu();
    const info = await settledInfo(src);
    return {
      quiet,
      zeroScanMs: zeroScan,
      info,
      totalTime: info["total-time"],
      wallMs,
      cpu: cpuUsed,
    };
  });
}
