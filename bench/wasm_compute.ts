/**
 * Issue 22's scenario W, its second sample guest: the compute guest (guests/assembly/compute.ts)
 * sieving an array of half its RAM, 256 MiB and 1 GiB, round after round, rewriting the whole
 * array every round (the fastest-dirtying guest there is). It runs alone for a few rounds,
 * then migrates at unlimited bandwidth with the default downtime-limit, as a user would move
 * it. Figures: total time and downtime, and the guest's slowdown: its round times (the
 * guest's own `ms` on each `round` line, so what the program itself experienced) while the
 * migration runs, against the rounds it ran alone just before, and the time the guest lost:
 * what the rounds that overlapped the migration took beyond the median round alone. A round
 * (seconds: it sieves half the RAM) outlasts the migration, so it is those one or two rounds
 * that say how much the migration cost the program. Postcopy is refused for a
 * WebAssembly guest (docs/guests.md), so a migration that does not converge within
 * `CONVERGE_MS` is cancelled and reported as such: a fact, not a failure of the scenario.
 *
 * @module
 */
import { startAgent, withAgents } from "./agent.ts";
import { cancelAndSettle, finalInfo, migrate, patch } from "./kit.ts";
import { median, type QuietWait, waitForQuiet } from "./measure.ts";
import { type Figure, infoFigure as info } from "./report.ts";
import { eachRamSize, ramLabel, readAnswers, WASM_RAM_MIB } from "./wasm_guests.ts";
import { buildGuest } from "../guests/build.ts";
import { waitFor } from "../harness/wait.ts";

/** Rounds the guest runs alone before the migration (at least; and at least `ALONE_MS`). */
const ALONE_ROUNDS = 3;
const ALONE_MS = 3000;
/** How long the migration may take to converge before it is cancelled (ms). */
const CONVERGE_MS = 120_000;
/** Rounds on the destination after the switchover before the run ends. */
const AFTER_ROUNDS = 1;

/** A `round` line of the compute guest: its number, when it was read here, its own ms. */
interface Round {
  round: number;
  at: number;
  ms: number;
}

/** One RAM size of one repetition. */
export interface ComputeRun {
  ramMiB: number;
  arrayMiB: number;
  quiet: QuietWait;
  /** The source's final MigrationInfo. */
  info: Record<string, unknown> & { status: string; downtime?: number; "total-time"?: number };
  /** Whether it completed within CONVERGE_MS (else it was cancelled). */
  converged: boolean;
  /** Round times (the guest's ms): alone before, and those that ran during the migration. */
  alone: number[];
  during: number[];
  /** Whether the rounds read go on without a gap, repeat or reorder across the switchover. */
  continuous: boolean;
}

const ROUND = /^round (\d+) limit \d+ primes \d+ total \d+ ms (\d+)$/;

/** One RAM size (see the module doc). */
export function computeRun(ramMiB: number): Promise<ComputeRun> {
  return withAgents(async (track) => {
    const arrayMiB = ramMiB / 2;
    const compute = (await buildGuest("compute")).path;
    const guest = ["--ram", `${ramMiB}M`, "--guest", `wasm:${compute},args=${arrayMiB}`];
    const [dst, src] = await Promise.all([
      track(startAgent([...guest, "--incoming", "tcp:127.0.0.1:0"])),
      track(startAgent(guest)),
    ]);
    const rounds = new Map<number, Round>();
    const onLine = (_key: number, at: number, line: string) => {
      const m = ROUND.exec(line);
      if (m && !rounds.has(Number(m[1]))) {
        rounds.set(Number(m[1]), { round: Number(m[1]), at, ms: Number(m[2]) });
      }
    };
    const readers = [readAnswers(src, onLine), readAnswers(dst, onLine)];
    try {
      const t0 = performance.now();
      await waitFor(
        `${ALONE_ROUNDS} rounds alone`,
        () => rounds.size >= ALONE_ROUNDS && performance.now() - t0 >= ALONE_MS,
        { timeoutMs: 120_000 },
      );
      await patch(src, "/parameters", { "max-bandwidth": 0 });
      const quiet = await waitForQuiet(0.6, 250, 1000);
      const postAt = performance.now();
      await migrate(src, dst.incomingUri!);
      let final = await finalInfo(src, CONVERGE_MS).catch(() => null);
      const converged = final?.status === "completed";
      // Cancelled, the source's guest runs on by itself (its rounds go on there).
      if (!converged) final = await cancelAndSettle(src);
      const endAt = performance.now();
      const seen = Math.max(...rounds.keys());
      await waitFor(
        `${AFTER_ROUNDS} rounds after the migration`,
        () => Math.max(...rounds.keys()) >= seen + AFTER_ROUNDS,
        { timeoutMs: 60_000 },
      );
      const all = [...rounds.values()].sort((a, b) => a.round - b.round);
      const continuous = all.every((r, i) => r.round === all[0].round + i);
      // A round ran during the migration when its span [at − ms, at] overlaps it.
      const alone = all.filter((r) => r.at < postAt).map((r) => r.ms);
      const during = all.filter((r) => r.at >= postAt && r.at - r.ms <= endAt).map((r) => r.ms);
      return { ramMiB, arrayMiB, quiet, info: final, converged, alone, during, continuous };
    } finally {
      await Promise.all(readers.map((r) => r.close()));
    }
  });
}

/** What the rounds that overlapped the migration took beyond the median round alone, ms. */
export function lostMs(r: ComputeRun): number {
  const alone = median(r.alone);
  return r.during.reduce((sum, ms) => sum + ms - alone, 0);
}

/** One repetition: every RAM size, each with fresh agents. */
export function computeScenario(): Promise<ComputeRun[]> {
  return eachRamSize(computeRun);
}

/** The compute guest's figures: per RAM size, medians over the repetitions. */
export function figuresWasmCompute(reps: readonly ComputeRun[][]): Figure[] {
  if (reps.length === 0) return [];
  const out: Figure[] = [];
  for (const mib of WASM_RAM_MIB) {
    const runs = reps.flat().filter((r) => r.ramMiB === mib);
    const done = runs.filter((r) => r.converged);
    const name = `W: compute in ${ramLabel(mib)}, sieving ${runs[0]?.arrayMiB} MiB`;
    out.push(
      info(`W.compute.converged.${mib}`, `${name}: runs that converged`, done.length, "runs"),
    );
    if (done.length > 0) {
      out.push(
        info(
          `W.compute.total.${mib}`,
          `${name}: total-time`,
          median(done.map((r) => r.info["total-time"] ?? NaN)),
          "ms",
        ),
        info(
          `W.compute.downtime.${mib}`,
          `${name}: downtime (downtime-limit 300 ms)`,
          median(done.map((r) => r.info.downtime ?? NaN)),
          "ms",
        ),
      );
    }
    const alone = median(runs.flatMap((r) => r.alone));
    const during = median(runs.flatMap((r) => r.during));
    out.push(
      info(
        `W.compute.lost.${mib}`,
        `${name}: the guest's time lost to the migration (rounds during − median alone)`,
        median(runs.map(lostMs)),
        "ms",
      ),
    );
    out.push({
      ...info(
        `W.compute.round.${mib}`,
        `${name}: a round's time (the guest's own ms) during the migration`,
        during,
        "ms",
      ),
      baseline: alone,
      baselineName: "the same guest alone just before",
      ratio: during / alone,
    });
  }
  return out;
}
