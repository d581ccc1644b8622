/**
 * Issue 5's scenario M: a 1 GiB random idle guest over multifd with 2 page channels, the
 * destination listening on a unix socket in a temp dir, unlimited bandwidth. Its throughput
 * (ram.transferred / (total-time − setup-time)) is set against a raw unix socket between two
 * fresh Deno processes (1 GiB in 1 MiB writes from one cache-hot buffer; the median of three
 * runs) measured right before the POST; the same pair streaming through 1 GiB buffers (memory-bound, as a
 * migration is) is measured too, for information.
 *
 * @module
 */
import { type Json, startAgent, withAgents } from "./agent.ts";
import { completedInfo, engineBytesPerSec, migrate, patch } from "./kit.ts";
import { median, type QuietWait, waitForQuiet, wallNow } from "./measure.ts";
import { type RawResult, runRaw, runRawMedian } from "./raw.ts";
import { type Figure, infoFigure } from "./report.ts";

const GIB = 2 ** 30;
const CHUNK = 2 ** 20;
/** Page channels of scenario M. */
export const MULTIFD_CHANNELS = 2;

/** One repetition of scenario M. */
export interface MultifdRun {
  quiet: QuietWait;
  /** Raw unix socket, 1 GiB in 1 MiB writes: the baseline. */
  rawUnix: RawResult;
  /** The same through 1 GiB buffers on both sides. */
  rawUnixSpan: RawResult;
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
    await migrate(src, dst.incomingUri ?? `unix:${dir}/s.sock`);
    return engineBytesPerSec(await completedInfo(src, 60_000));
  });
}

/** One repetition of scenario M (see the module doc). */
export async function multifdScenario(): Promise<MultifdRun> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-mfd-" });
  try {
    return await withAgents(async (track) => {
      const [dst, src] = await Promise.all([
        track(startAgent(["--ram", "1G", "--incoming", `unix:${dir}/m.sock`])),
        track(startAgent(["--ram", "1G", "--fill", "random", "--workload", "idle"])),
      ]);
      for (const a of [dst, src]) await patch(a, "/capabilities", { "x-multifd": true });
      await patch(src, "/parameters", {
        "max-bandwidth": 0,
        "x-multifd-channels": MULTIFD_CHANNELS,
      });
      const quiet = await waitForQuiet(0.25, 250, 3000);
      const rawUnixSpan = await runRaw("unix", GIB, CHUNK, GIB);
      const rawUnix = await runRawMedian("unix", GIB, CHUNK);
      const t0 = wallNow();
      await migrate(src, dst.incomingUri ?? `unix:${dir}/m.sock`);
      await completedInfo(dst, 60_000);
      const destWallMs = wallNow() - t0;
      const info = await completedInfo(src, 10_000);
      if (!(info.ram["multifd-bytes"] > 0)) throw new Error("no bytes went over multifd");
      const bytesPerSec = engineBytesPerSec(info);
      return { quiet, rawUnix, rawUnixSpan, info, bytesPerSec, destWallMs };
    }).then(async (run) => ({ ...run, singleBytesPerSec: await singleChannel(dir) }));
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The figures of scenario M (medians; the ratio is the median of per-repetition ratios). */
export function figuresMultifd(runs: readonly MultifdRun[]): Figure[] {
  if (runs.length === 0) return [];
  const ratio = median(runs.map((r) => r.bytesPerSec / r.rawUnix.bytesPerSec));
  const row = infoFigure;
  return [
    {
      id: "M.throughput",
      figure: `M: 1 GiB random, multifd ${MULTIFD_CHANNELS} channels, unix socket`,
      value: median(runs.map((r) => r.bytesPerSec / 1e9)),
      unit: "GB/s",
      baseline: median(runs.map((r) => r.rawUnix.bytesPerSec / 1e9)),
      baselineName: "raw Deno unix socket, 1 MiB writes",
      ratio,
      target: "ratio ≥ 0.8",
      pass: ratio >= 0.8,
    },
    {
      ...row(
        "M.span",
        "M: same, against raw unix through 1 GiB buffers (memory-bound)",
        median(runs.map((r) => r.bytesPerSec / 1e9)),
        "GB/s",
      ),
      baseline: median(runs.map((r) => r.rawUnixSpan.bytesPerSec / 1e9)),
      baselineName: "raw Deno unix socket through 1 GiB buffers",
      ratio: median(runs.map((r) => r.bytesPerSec / r.rawUnixSpan.bytesPerSec)),
    },
    {
      ...row(
        "M.single",
        "M: the same over one channel (no multifd), unix socket",
        median(runs.map((r) => r.singleBytesPerSec / 1e9)),
        "GB/s",
      ),
      baseline: median(runs.map((r) => r.bytesPerSec / 1e9)),
      baselineName: `multifd, ${MULTIFD_CHANNELS} channels`,
      ratio: median(runs.map((r) => r.singleBytesPerSec / r.bytesPerSec)),
    },
    row("M.setup", "M: setup-time", median(runs.map((r) => r.info["setup-time"])), "ms"),
    row("M.total", "M: total-time", median(runs.map((r) => r.info["total-time"])), "ms"),
    row("M.downtime", "M: downtime", median(runs.map((r) => r.info.downtime)), "ms"),
    row("M.dest", "M: POST → destination completed", median(runs.map((r) => r.destWallMs)), "ms"),
    row(
      "M.share",
      "M: multifd-bytes / transferred",
      median(runs.map((r) => r.info.ram["multifd-bytes"] / r.info.ram.transferred)),
      "",
    ),
  ];
}
