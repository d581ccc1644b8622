/**
 * Issue 22's scenario W: a real WebAssembly guest migrated under its client. The key-value
 * store (guests/assembly/kvstore.ts) runs in 256 MiB and in 1 GiB of RAM, its heap first
 * filled to half of it with 16 KiB values (`FILL`), then a client sends it `SET` commands at a
 * steady 200 per second (`POST /machine/input`) and reads the answers from `GET
 * /machine/output` (source and destination: the numbering goes on across the switchover). For
 * a window the store runs alone; then it migrates at unlimited bandwidth with `downtime-limit`
 * set to the goal, 20 ms, as a user who wants that pause would. Figures: total time, downtime
 * (goal ≤ 20 ms), and the client's answer latency (p50, p99: request to answer) during the
 * migration against the window alone.
 *
 * @module
 */
import { createParser } from "eventsource-parser";
import { type BenchAgent, startAgent, withAgents } from "./agent.ts";
import { bounded, completedInfo, migrate, patch } from "./kit.ts";
import { median, percentile, type QuietWait, waitForQuiet } from "./measure.ts";
import { type Figure, infoFigure as info } from "./report.ts";
import { buildGuest } from "../guests/build.ts";
import { waitFor } from "../harness/wait.ts";

/** The RAM sizes, MiB. */
export const WASM_RAM_MIB = [256, 1024] as const;
/** The goal: the kvstore's downtime under its client, ms (issue 22). */
export const WASM_GOAL_DOWNTIME_MS = 20;
/** The client's commands per second. */
const CLIENT_RATE = 200;
/** How long the store runs alone under its client before the migration (ms). */
const ALONE_MS = 3000;
/** Bytes of each value FILL stores. */
const VALUE_BYTES = 16384;

/** One RAM size of one repetition. */
export interface WasmGuestRun {
  ramMiB: number;
  quiet: QuietWait;
  /** The source's MigrationInfo once completed. */
  info: Record<string, unknown> & { downtime: number; "total-time": number };
  /** Request → answer, ms: the window alone, and from the POST to the last answer after it. */
  alone: number[];
  during: number[];
  /** Commands sent and answered in all. */
  sent: number;
  answered: number;
}

/** The lines an agent's guest writes, each with the time it was read here. */
export function readAnswers(
  a: BenchAgent,
  onLine: (key: number, at: number, line: string) => void,
) {
  let reader: ReadableStreamDefaultReader<Uint8Array> | null = null;
  let closing = false;
  const done = (async () => {
    const r = await fetch(`${a.base}/machine/output`);
    reader = r.body!.getReader();
    if (closing) await reader.cancel();
    const parser = createParser({
      onEvent: (e) => {
        const rec = JSON.parse(e.data) as { seq: number; text: string };
        const at = performance.now();
        const lines = rec.text.split("\n").filter((l) => l.length > 0);
        lines.forEach((line, i) => onLine(rec.seq * 1e6 + i, at, line));
      },
    });
    const text = new TextDecoder();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      parser.feed(text.decode(value, { stream: true }));
    }
  })().catch(() => {});
  return {
    close: async () => {
      closing = true;
      await (reader as ReadableStreamDefaultReader<Uint8Array> | null)?.cancel().catch(() => {});
      await done;
    },
  };
}

/** One RAM size (see the module doc). */
export function wasmGuestRun(ramMiB: number): Promise<WasmGuestRun> {
  return withAgents(async (track) => {
    const kv = (await buildGuest("kvstore")).path;
    const guest = ["--ram", `${ramMiB}M`, "--guest", `wasm:${kv}`];
    const [dst, src] = await Promise.all([
      track(startAgent([...guest, "--incoming", "tcp:127.0.0.1:0"])),
      track(startAgent(guest)),
    ]);
    // Answers by (seq, line): a record the source wrote and the destination holds again counts
    // once; the k-th answer is the k-th command's (one client, in order).
    const seen = new Map<number, number>();
    let last = "";
    const onLine = (key: number, at: number, line: string) => {
      if (!seen.has(key)) seen.set(key, at);
      last = line;
    };
    const readers = [readAnswers(src, onLine), readAnswers(dst, onLine)];
    try {
      const filled = seen.size;
      const count = Math.floor((ramMiB * 2 ** 20) / 2 / VALUE_BYTES);
      await input(src, `FILL ${count} ${VALUE_BYTES} fill:`);
      await waitFor("the FILL answer", () => seen.size > filled, { timeoutMs: 120_000 });
      if (last !== `OK ${count}`) throw new Error(`FILL ${count}: the store answered '${last}'`);
      const base = seen.size;
      const sentAt: number[] = [];
      let target = src;
      let stop = false;
      const client = (async () => {
        const t0 = performance.now();
        for (let i = 0; !stop; i++) {
          const due = t0 + (i * 1000) / CLIENT_RATE;
          await new Promise((r) => setTimeout(r, Math.max(0, due - performance.now())));
          sentAt.push(performance.now());
          // Around the switchover the source refuses input (its guest is going) and the
          // destination too (not arrived yet): the client retries until one takes it, and
          // then follows the guest. Its wait counts in the answer's latency.
          const command = `SET k${i % 1000} ${i}`;
          while (!await input(target, command, false)) {
            const other = target === src ? dst : src;
            if (await input(other, command, false)) {
              target = other;
              break;
            }
            await new Promise((r) => setTimeout(r, 2));
          }
        }
      })();
      await new Promise((r) => setTimeout(r, ALONE_MS));
      await patch(src, "/parameters", {
        "max-bandwidth": 0,
        "downtime-limit": WASM_GOAL_DOWNTIME_MS,
      });
      const quiet = await waitForQuiet(0.6, 250, 1000);
      const postAt = performance.now();
      await migrate(src, dst.incomingUri!);
      const migrated = await completedInfo(src, 300_000);
      await new Promise((r) => setTimeout(r, 500)); // answers after the switchover
      stop = true;
      await bounded(client, 10_000, "the client to stop");
      await waitFor("every answer", () => seen.size - base >= sentAt.length, { timeoutMs: 10_000 })
        .catch(() => {}); // counted as answered below
      const answers = [...seen.entries()].sort((x, y) => x[0] - y[0]).slice(base);
      const alone: number[] = [];
      const during: number[] = [];
      answers.forEach(([, at], k) => {
        if (k >= sentAt.length) return;
        (sentAt[k] < postAt ? alone : during).push(at - sentAt[k]);
      });
      return {
        ramMiB,
        quiet,
        info: migrated,
        alone,
        during,
        sent: sentAt.length,
        answered: answers.length,
      };
    } finally {
      await bounded(
        Promise.all(readers.map((r) => r.close())),
        10_000,
        "the answer streams to end",
      );
    }
  });
}

/** Sends `line` to the guest of `a`; false when refused (and `must` is false). */
async function input(a: BenchAgent, line: string, must = true): Promise<boolean> {
  const r = await fetch(`${a.base}/machine/input`, {
    method: "POST",
    body: `${line}\n`,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await r.text();
  if (r.status === 202) return true;
  if (must) throw new Error(`POST /machine/input: ${r.status} ${text}`);
  return false;
}

/** Runs `run` for every RAM size in turn (each makes its own agents). */
export async function eachRamSize<T>(run: (mib: number) => Promise<T>): Promise<T[]> {
  const runs: T[] = [];
  for (const mib of WASM_RAM_MIB) runs.push(await run(mib));
  return runs;
}

/** A RAM size as the figures name it: 256 MiB, 1 GiB. */
export function ramLabel(mib: number): string {
  return mib >= 1024 ? `${mib / 1024} GiB` : `${mib} MiB`;
}

/** One repetition: every RAM size, each with fresh agents. */
export function wasmGuestScenario(): Promise<WasmGuestRun[]> {
  return eachRamSize(wasmGuestRun);
}

/** The figures of scenario W: per RAM size, medians over the repetitions (latencies pooled). */
export function figuresWasmGuests(reps: readonly WasmGuestRun[][]): Figure[] {
  if (reps.length === 0) return [];
  const out: Figure[] = [];
  for (const mib of WASM_RAM_MIB) {
    const runs = reps.flat().filter((r) => r.ramMiB === mib);
    const name = `W: kvstore in ${ramLabel(mib)}, half full, ` +
      `${CLIENT_RATE} SET/s`;
    const downtime = median(runs.map((r) => r.info.downtime));
    const alone = runs.flatMap((r) => r.alone);
    const during = runs.flatMap((r) => r.during);
    out.push(
      info(
        `W.total.${mib}`,
        `${name}: total-time`,
        median(runs.map((r) => r.info["total-time"])),
        "ms",
      ),
      {
        id: `W.downtime.${mib}`,
        figure: `${name}: downtime (downtime-limit ${WASM_GOAL_DOWNTIME_MS} ms)`,
        value: downtime,
        unit: "ms",
        baseline: WASM_GOAL_DOWNTIME_MS,
        baselineName: "issue 22's goal",
        ratio: downtime / WASM_GOAL_DOWNTIME_MS,
        target: `≤ ${WASM_GOAL_DOWNTIME_MS} ms`,
        pass: downtime <= WASM_GOAL_DOWNTIME_MS,
      },
      ...[50, 99].map((q) => ({
        ...info(
          `W.p${q}.${mib}`,
          `${name}: answer latency p${q} during the migration`,
          percentile(during, q),
          "ms",
        ),
        baseline: percentile(alone, q),
        baselineName: "the same client, the store alone just before",
        ratio: percentile(during, q) / percentile(alone, q),
      })),
    );
  }
  return out;
}
