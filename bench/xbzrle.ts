/**
 * Issue 5's scenario X: a 128 MiB random guest running `increment` over 32 MiB (1M..33M, so
 * the 8192 pages it rewrites every few milliseconds fit a 64 MiB XBZRLE cache), under a
 * 256 MiB/s cap and a 50 ms downtime limit, so precopy makes pass after pass and never
 * converges. Migrated twice with fresh agents: plain, then with XBZRLE. The plain run gives
 * the baseline: bytes on the wire per resent page (Δ ram.transferred / Δ (normal + duplicate)
 * from the end of the first pass to the end of the fifth, framing included). The XBZRLE run
 * gives `xbzrle-cache.bytes / xbzrle-cache.pages` once its sixth pass starts (pass 2 fills the
 * cache). Each run is then cancelled (or read as it is, if it completed). The XBZRLE run's
 * agents are watched for RSS.
 *
 * @module
 */
import { type BenchAgent, type Json, startAgent, withAgents } from "./agent.ts";
import { cancelAndSettle, MIB, migrate, patch, TERMINAL, waitInfo } from "./kit.ts";
import { median, type QuietWait, waitForQuiet } from "./measure.ts";
import { type Figure, infoFigure as info } from "./report.ts";
import { rssFigures, type RssPeak, watchRss } from "./rss.ts";

/** Guest RAM and XBZRLE cache of scenario X, bytes. */
export const XBZRLE_RAM = 128 * MIB;
export const XBZRLE_CACHE = 64 * MIB;
const WORKLOAD = "increment,start=1M,end=33M";
const PARAMS = { "max-bandwidth": 256 * MIB, "downtime-limit": 50 };
/** dirty-sync-count at which the window closes. */
const LAST_PASS = 6;

/** What one migration of scenario X saw. */
export interface XbzrleLeg {
  /** The source's info when the window opened and when it closed, and its final info. */
  open: Json;
  close: Json;
  final: Json;
  /** Δ ram.transferred / Δ pages sent (normal + duplicate + xbzrle) over the window. */
  bytesPerPage: number;
  /** True if the migration completed on its own before the window closed. */
  converged: boolean;
}

/** One repetition of scenario X. */
export interface XbzrleRun {
  quiet: QuietWait;
  plain: XbzrleLeg;
  xbzrle: XbzrleLeg;
  /** xbzrle-cache.bytes / xbzrle-cache.pages when the window closed. */
  xbzrleBytesPerPage: number;
  /** Peak RSS of both agents of the XBZRLE migration. */
  rss: Record<string, RssPeak>;
}

function pagesSent(info: Json): number {
  return info.ram.normal + info.ram.duplicate + (info["xbzrle-cache"]?.pages ?? 0);
}

/** One migration: the window from pass `from` to pass LAST_PASS (or completion). */
async function leg(
  src: BenchAgent,
  uri: string,
  from: number,
): Promise<XbzrleLeg> {
  await migrate(src, uri);
  const reached = (n: number) => (b: Json) =>
    TERMINAL.test(b.status) || b.ram?.["dirty-sync-count"] >= n;
  const open = await waitInfo(src, reached(from), 20_000, 5);
  const close = TERMINAL.test(open.status) ? open : await waitInfo(
    src,
    reached(LAST_PASS),
    20_000,
    5,
  );
  const final = await cancelAndSettle(src);
  const converged = final.status === "completed" && close.status === "completed";
  return {
    open,
    close,
    final,
    bytesPerPage: (close.ram.transferred - open.ram.transferred) /
      (pagesSent(close) - pagesSent(open)),
    converged,
  };
}

function guests(track: (a: Promise<BenchAgent>) => Promise<BenchAgent>) {
  return Promise.all([
    track(startAgent(["--ram", "128M", "--incoming", "tcp:127.0.0.1:0"])),
    track(startAgent(["--ram", "128M", "--fill", "random", "--workload", WORKLOAD])),
  ]);
}

/** One repetition of scenario X (see the module doc). */
export async function xbzrleScenario(): Promise<XbzrleRun> {
  const { quiet, plain } = await withAgents(async (track) => {
    const [dst, src] = await guests(track);
    await patch(src, "/parameters", PARAMS);
    const quiet = await waitForQuiet(0.25, 250, 3000);
    return { quiet, plain: await leg(src, dst.incomingUri!, 2) };
  });
  return await withAgents(async (track) => {
    const [dst, src] = await guests(track);
    await patch(src, "/parameters", { ...PARAMS, "xbzrle-cache-size": XBZRLE_CACHE });
    await patch(src, "/capabilities", { xbzrle: true });
    await waitForQuiet(0.25, 250, 3000);
    const rss = watchRss({ source: src.pid, destination: dst.pid });
    const xbzrle = await leg(src, dst.incomingUri!, 3).finally(() => rss.stop());
    const peaks = await rss.stop();
    const x = xbzrle.close["xbzrle-cache"];
    return { quiet, plain, xbzrle, xbzrleBytesPerPage: x.bytes / x.pages, rss: peaks };
  });
}

/** The figures of scenario X (medians over the repetitions). */
export function figuresXbzrle(runs: readonly XbzrleRun[]): Figure[] {
  if (runs.length === 0) return [];
  const plain = median(runs.map((r) => r.plain.bytesPerPage));
  const ratio = median(runs.map((r) => r.xbzrleBytesPerPage / r.plain.bytesPerPage));
  const windowRatio = median(runs.map((r) => r.xbzrle.bytesPerPage / r.plain.bytesPerPage));
  const cache = (f: (x: Json) => number) =>
    median(runs.map((r) => f(r.xbzrle.close["xbzrle-cache"])));
  return [
    {
      id: "X.page",
      figure: "X: XBZRLE bytes per resent page (xbzrle-cache bytes / pages), increment",
      value: median(runs.map((r) => r.xbzrleBytesPerPage)),
      unit: "B",
      baseline: plain,
      baselineName: "plain: Δ transferred / Δ pages, passes 2–5",
      ratio,
      target: "ratio ≤ 0.2 (5× fewer)",
      pass: ratio <= 0.2,
    },
    {
      ...info(
        "X.window",
        "X: XBZRLE run, Δ transferred / Δ pages over passes 3–5 (misses included)",
        median(runs.map((r) => r.xbzrle.bytesPerPage)),
        "B",
      ),
      baseline: plain,
      baselineName: "plain, as above",
      ratio: windowRatio,
    },
    info("X.miss", "X: xbzrle cache-miss-rate at pass 6", cache((x) => x["cache-miss-rate"]), ""),
    info("X.overflow", "X: xbzrle overflow (pages sent whole)", cache((x) => x.overflow), "pages"),
    info(
      "X.plainDone",
      "X: plain runs that completed on their own",
      runs.filter((r) => r.plain.converged).length,
      `of ${runs.length}`,
    ),
    info(
      "X.xbzrleDone",
      "X: XBZRLE runs that completed on their own",
      runs.filter((r) => r.xbzrle.converged).length,
      `of ${runs.length}`,
    ),
    ...rssFigures(
      "X",
      "X: XBZRLE run",
      runs.map((r) => r.rss),
      XBZRLE_RAM + XBZRLE_CACHE + 128 * MIB,
      "guest RAM + xbzrle cache + 128 MiB",
    ),
  ];
}
