/**
 * Issue 5's scenario M: a 1 GiB random idle guest over multifd with 2 page channels, the
 * destination listening on a unix socket in a temp dir, unlimited bandwidth. Its throughput
 * (ram.transferred / (total-time − setup-time)) is judged against the host's limit over unix
 * sockets (issue 17; bench/limit.ts: raw pairs through touched 1 GiB buffers on 4 KiB and on
 * huge pages, the better one, measured before the agents start and again right after the
 * migration, averaged) and against the same guest over one channel (multifd must never lose to
 * it); a raw unix pair from one cache-hot buffer (median of three, after the migration) is a
 * reference.
 *
 * @module
 */
import { type Json, startAgent, withAgents } from "./agent.ts";
import { completedInfo, engineBytesPerSec, migrateAndFollow, patch } from "./kit.ts";
import { limitSummary } from "./report.ts";
import { bracketLimit, measureLimit, type MemoryLimit } from "./limit.ts";
import { median, type QuietWait, waitForQuiet, wallNow } from "./measure.ts";
import { type RawResult, runRawMedian } from "./raw.ts";
import { downtimeFigure, type Figure, infoFigure, pagesName } from "./report.ts";

const GIB = 2 ** 30;
const CHUNK = 2 ** 20;
/** Page channels of scenario M. */
export const MULTIFD_CHANNELS = 2;

/** One repetition of scenario M. */
export interface MultifdRun {
  quiet: QuietWait;
  /** Raw unix socket, 1 GiB in 1 MiB writes from a cache-hot buffer: a reference. */
  rawUnix: RawResult;
  /** The host's limit over unix sockets (4 KiB and huge-page pairs through 1 GiB buffers). */
  limit: MemoryLimit;
  /** The source's page size asked for RAM, and its downtime-limit. */
  sourcePageSize: number;
  downtimeLimit: number;
  /** The source's info once completed. */
  info: Json;
  /** ram.transferred / (total-time − setup-time), bytes per second. */
  bytesPerSec: number;
  /** POST sent → destination seen completed, ms. */
  destWallMs: number;
  /** The same guest over one unix-socket channel (no multifd), fresh agents, bytes/s. */
  singleBytesPerSec: number;
}

/** The same guest over one channel (no multifd) on a unix socket, fresh agents: bytes/s. */
function singleChannel(dir: string): Promise<number> {
  return withAgents(async (track) => {
    const [dst, src] = await Promise.all([
      track(startAgent(["--ram", "1G", "--incoming", `unix:${dir}/s.sock`])),
      track(startAgent(["--ram", "1G", "--fill", "random", "--workload", "idle"])),
    ]);
    await patch(src, "/parameters", { "max-bandwidth": 0 });
    await waitForQuiet(0.25, 250, 3000);
    await migrateAndFollow(src, dst, dst.incomingUri ?? `unix:${dir}/s.sock`);
    return engineBytesPerSec(await completedInfo(src, 10_000));
  });
}

/** One repetition of scenario M (see the module doc). */
export async function multifdScenario(): Promise<MultifdRun> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-mfd-" });
  try {
    // The limit around the migration and the reference after it, as scenario A's
    // (scenarios.ts says why).
    const quiet = await waitForQuiet(0.25, 250, 3000);
    const before = await measureLimit("unix", GIB, CHUNK);
    const run = await withAgents(async (track) => {
      const [dst, src] = await Promise.all([
        track(startAgent(["--ram", "1G", "--incoming", `unix:${dir}/m.sock`])),
        track(startAgent(["--ram", "1G", "--fill", "random", "--workload", "idle"])),
      ]);
      for (const a of [dst, src]) await patch(a, "/capabilities", { "x-multifd": true });
      await patch(src, "/parameters", {
        "max-bandwidth": 0,
        "x-multifd-channels": MULTIFD_CHANNELS,
      });
      const downtimeLimit = (await src.api("GET", "/parameters")).body["downtime-limit"];
      const sourcePageSize = (await src.api("GET", "/machine")).body["x-ram-backing"]["page-size"];
      await waitForQuiet(0.25, 250, 3000); // the agents' start is over
      const t0 = wallNow();
      const ends = await migrateAndFollow(src, dst, dst.incomingUri ?? `unix:${dir}/m.sock`);
      const destWallMs = ends.destAt - t0;
      const info = await completedInfo(src, 10_000);
      if (!(info.ram["multifd-bytes"] > 0)) throw new Error("no bytes went over multifd");
      const bytesPerSec = engineBytesPerSec(info);
      return { quiet, sourcePageSize, downtimeLimit, info, bytesPerSec, destWallMs };
    });
    const limit = bracketLimit(before, await measureLimit("unix", GIB, CHUNK));
    const rawUnix = await runRawMedian("unix", GIB, CHUNK);
    return { ...run, limit, rawUnix, singleBytesPerSec: await singleChannel(dir) };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * The figures of scenario M (medians; ratios are medians of per-repetition ratios). `host`
 * names the kernel and THP mode in every row judged against the host's limit.
 */
export function figuresMultifd(runs: readonly MultifdRun[], host: string): Figure[] {
  if (runs.length === 0) return [];
  const lim = limitSummary(runs.map((r) => r.limit));
  const ratio = median(runs.map((r) => r.bytesPerSec / lim.pick(r.limit).bytesPerSec));
  const vsSingle = median(runs.map((r) => r.bytesPerSec / r.singleBytesPerSec));
  const row = infoFigure;
  const pages = pagesName(median(runs.map((r) => r.sourcePageSize)));
  return [
    {
      id: "M.throughput",
      figure: `M: 1 GiB random, multifd ${MULTIFD_CHANNELS} channels, unix socket, on ${pages}`,
      value: median(runs.map((r) => r.bytesPerSec / 1e9)),
      unit: "GB/s",
      baseline: median(runs.map((r) => lim.pick(r.limit).bytesPerSec / 1e9)),
      baselineName:
        `host limit: raw unix pair through touched 1 GiB buffers, ${lim.label}; ${host}`,
      ratio,
      target: "ratio ≥ 0.9",
      pass: ratio >= 0.9,
    },
    {
      ...row(
        "M.cachehot",
        "M: against raw unix from a cache-hot buffer (reference)",
        median(runs.map((r) => r.bytesPerSec / 1e9)),
        "GB/s",
      ),
      baseline: median(runs.map((r) => r.rawUnix.bytesPerSec / 1e9)),
      baselineName: "raw Deno unix socket, cache-hot 1 MiB buffer, median of 3",
      ratio: median(runs.map((r) => r.bytesPerSec / r.rawUnix.bytesPerSec)),
    },
    row("raw.unix4k", "raw unix pair through 1 GiB buffers, 4 KiB pages", lim.small, "GB/s"),
    row("raw.unixhuge", "raw unix pair through 1 GiB buffers, huge pages", lim.huge, "GB/s"),
    {
      id: "M.single",
      figure: `M: multifd ${MULTIFD_CHANNELS} channels against one channel (no multifd), unix`,
      value: median(runs.map((r) => r.bytesPerSec / 1e9)),
      unit: "GB/s",
      baseline: median(runs.map((r) => r.singleBytesPerSec / 1e9)),
      baselineName: "the same guest over one channel, fresh agents",
      ratio: vsSingle,
      target: "ratio ≥ 1",
      pass: vsSingle >= 1,
    },
    downtimeFigure(
      "M.downtime",
      "M: downtime",
      runs.map((r) => r.info.downtime),
      median(runs.map((r) => r.downtimeLimit)),
    ),
    row("M.setup", "M: setup-time", median(runs.map((r) => r.info["setup-time"])), "ms"),
    row("M.total", "M: total-time", median(runs.map((r) => r.info["total-time"])), "ms"),
    row("M.dest", "M: POST → destination completed", median(runs.map((r) => r.destWallMs)), "ms"),
    row(
      "M.share",
      "M: multifd-bytes / transferred",
      median(runs.map((r) => r.info.ram["multifd-bytes"] / r.info.ram.transferred)),
      "",
    ),
  ];
}
