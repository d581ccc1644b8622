/**
 * The bench's CPU accounting and the load scenario's figures: per-thread CPU from /proc
 * follows real work on the right thread (child processes spinning on a Worker or on their main
 * thread, or sleeping; amounts are the bench's business, attribution is checked here), the
 * load's CPU and what-if rows come out of a repetition's numbers as documented, and the host's
 * limit and downtime rows judge as the issue asks (the better page size; the worst run against
 * downtime-limit × 1.1).
 */
import assert from "node:assert/strict";
import { sampleCpu } from "../../bench/measure.ts";
import { figuresLoad, loadCpuMs, type LoadRun, type RunCpu } from "../../bench/load.ts";
import { bracketLimit, type MemoryLimit } from "../../bench/limit.ts";
import type { RawResult } from "../../bench/raw.ts";
import { downtimeFigure, limitSummary } from "../../bench/report.ts";
import { waitFor } from "../../harness/wait.ts";

/** A child process running `script` with `deno eval`; killed (by its pid) after `fn`. */
async function withChild(script: string, fn: (pid: number) => Promise<void>): Promise<void> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["eval", script],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await fn(child.pid);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* ended */ }
    await child.status;
  }
}

/**
 * Samples `pid` over short windows until `holds` accepts a sample (a spinning thread gets the
 * CPU the scheduler gives it, late on a busy machine); returns that sample's threads.
 */
function sampleUntil(
  what: string,
  pid: number,
  holds: (threads: Record<string, number>) => boolean,
): Promise<Record<string, number>> {
  return waitFor(what, async () => {
    const stop = sampleCpu({ p: pid });
    await new Promise((r) => setTimeout(r, 100));
    const threads = stop().processes.p;
    return holds(threads) && threads;
  }, { timeoutMs: 30_000, intervalMs: 0 });
}

/** The busiest thread of a sample (named as sampleCpu names them), and its ms. */
function busiest(threads: Record<string, number>): [string, number] {
  const own = Object.entries(threads).filter(([n]) => !/^\(.*threads\)$|^total$/.test(n));
  return own.sort((a, b) => b[1] - a[1])[0] ?? ["", 0];
}

const SPIN = "for (;;);";

Deno.test({
  name: "sampleCpu: a thread's CPU follows work done on it",
  ignore: Deno.build.os !== "linux",
  async fn() {
    // A Worker spins; the main thread only waits for it.
    const worker = `new Worker(URL.createObjectURL(new Blob([${JSON.stringify(SPIN)}])), ` +
      `{ type: "module" });`;
    await withChild(worker, async (pid) => {
      const threads = await sampleUntil(
        "the spinning Worker to be the busiest thread",
        pid,
        (t) => {
          const [name, ms] = busiest(t);
          return name.startsWith("worker-") && ms > 0;
        },
      );
      const [, ms] = busiest(threads);
      assert.ok(threads["(live threads)"] >= ms, "live threads include the busy one");
      assert.ok((threads["(main thread)"] ?? 0) < ms, "the waiting main thread is not busiest");
    });
  },
});

Deno.test({
  name: "sampleCpu: a process's first thread is its main thread",
  ignore: Deno.build.os !== "linux",
  async fn() {
    await withChild(SPIN, async (pid) => {
      const threads = await sampleUntil("the spinning main thread to be the busiest", pid, (t) => {
        const [name, ms] = busiest(t);
        return name === "(main thread)" && ms > 0;
      });
      assert.ok(threads["(live threads)"] >= threads["(main thread)"]);
    });
  },
});

Deno.test({
  name: "sampleCpu: a sleeping process costs nothing",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const child = new Deno.Command("sleep", { args: ["30"] }).spawn();
    try {
      // Once it sleeps (state S), it runs no more until killed: exactly 0 ns of CPU.
      await waitFor("sleep to be asleep", () => {
        const stat = Deno.readTextFileSync(`/proc/${child.pid}/stat`);
        return stat.slice(stat.lastIndexOf(")") + 2).startsWith("S");
      });
      const stop = sampleCpu({ sleeper: child.pid });
      await new Promise((r) => setTimeout(r, 100));
      const threads = stop().processes.sleeper;
      assert.equal(threads["(live threads)"], 0, JSON.stringify(threads));
    } finally {
      child.kill("SIGKILL");
      await child.status;
    }
  },
});

function cpu(windowMs: number, agentMainMs: number, clientMs: number): RunCpu {
  return { windowMs, agentMainMs, agentOtherMs: 0, clientMs, irqMs: 0 };
}

function run(sched: LoadRun["sched"], ratio: number): LoadRun {
  return {
    quiet: [],
    aloneMs: 100,
    loadedMs: 100 * ratio,
    ratio,
    loadedFirst: false,
    sched,
    // Alone: 10% of a core on the main thread; loaded: 30%; the client 0 → 20%.
    cpu: { alone: cpu(100, 10, 0), loaded: cpu(200, 60, 40) },
    sse: { subscribers: 2, minEvents: 9, maxEvents: 9, lost: 0, dropped: 0, wrongSequence: 0 },
    polls: {
      sent: 10,
      errors: 0,
      achievedRate: 500,
      rateDuring: 510,
      p50: 1,
      p99: 2,
      max: 3,
    },
  };
}

Deno.test("loadCpuMs: the rate under load minus the rate alone, times the loaded time", () => {
  const r = run("other", 1.5); // loaded 150 ms
  assert.equal(loadCpuMs(r, (c) => c.agentMainMs), (0.3 - 0.1) * 150);
  assert.equal(loadCpuMs(r, (c) => c.clientMs), 0.2 * 150);
});

Deno.test("figuresLoad: the judged rows, and a what-if that is not judged", () => {
  const judged = figuresLoad([run("other", 1.2), run("other", 1.05), run("other", 1.3)]);
  const time = judged.find((f) => f.id === "L.time")!;
  assert.equal(time.ratio, 1.2, "the median of the pairs' ratios");
  assert.match(time.figure, /slowdown per pair 1\.05–1\.30$/, "reported with its spread");
  assert.equal(time.pass, null, "the slowdown is not judged (issue 17 item 6)");
  const p99 = judged.find((f) => f.id === "L.p99")!;
  assert.deepEqual([p99.value, p99.target, p99.pass], [2, "< 20 ms", true]);
  assert.equal(judged.find((f) => f.id === "L.rate")!.value, 510, "the rate during the migration");
  assert.ok(judged.some((f) => f.id === "L.cpu.client"));

  const whatIf = figuresLoad([run("idle-client", 1.05)]);
  const row = whatIf.find((f) => f.id === "L.time")!;
  assert.match(row.figure, /what-if \(client under SCHED_IDLE\)/);
  assert.equal(row.target, null);
  assert.equal(row.pass, null, "a what-if is never judged");
});

Deno.test("bench: the host's limit is the better page size's pair; downtime judges the worst run", () => {
  const raw = (gbps: number) => ({ bytesPerSec: gbps * 1e9 }) as RawResult;
  const limit = (small: number, huge: number): MemoryLimit => {
    const winner = huge > small ? "huge" : "4k";
    return {
      transport: "tcp",
      small: raw(small),
      huge: raw(huge),
      winner,
      best: raw(Math.max(small, huge)),
    };
  };
  const here = limitSummary([limit(0.36, 2.31), limit(0.32, 2.5), limit(0.4, 2.4)]);
  assert.deepEqual([here.small, here.huge, here.winner], [0.36, 2.4, "huge"]);
  assert.match(
    here.label,
    /^huge pages won \(median 2\.40 vs 0\.36 GB\/s; huge pages won 3 of 3\)$/,
  );
  const there = limitSummary([limit(6.6, 4.5), limit(6.4, 4.8), limit(4.0, 4.3)]);
  assert.deepEqual([there.winner, there.small, there.huge], ["4k", 6.4, 4.5]);
  assert.match(there.label, /^4 KiB pages won .*huge pages won 1 of 3/);
  // Each repetition is judged against the run's winning page size, even where the other page
  // size's pair happened to be faster in it (the third: 4.3 on huge pages beat 4.0).
  const third = limit(4.0, 4.3);
  assert.equal(there.pick(third).bytesPerSec, 4.0e9);
  assert.equal(here.pick(limit(2.5, 2.4)).bytesPerSec, 2.4e9);
  const ok = downtimeFigure("X", "X: downtime", [120, 329, 40], 300);
  assert.deepEqual([ok.value, ok.baseline, ok.pass], [329, 330, true]);
  const over = downtimeFigure("X", "X: downtime", [120, 583, 40], 300);
  assert.deepEqual([over.value, over.pass], [583, false]);
});

Deno.test("bench: a limit bracketing a migration is the mean of the pairs before and after it", () => {
  const run = (gbps: number, cpu: number) =>
    ({ bytesPerSec: gbps * 1e9, ms: 1000 / gbps, sinkCpuMs: cpu, sourceCpuMs: cpu }) as RawResult;
  const limit = (small: RawResult, huge: RawResult): MemoryLimit => {
    const winner = huge.bytesPerSec > small.bytesPerSec ? "huge" : "4k";
    return { transport: "tcp", small, huge, winner, best: winner === "huge" ? huge : small };
  };
  // Before, 4 KiB pages won; after, huge pages did; over both, huge pages are ahead.
  const before = limit(run(6.7, 150), run(5.6, 160));
  const after = limit(run(5.2, 190), run(6.8, 140));
  const l = bracketLimit(before, after);
  assert.equal(l.small.bytesPerSec, 5.95e9);
  assert.equal(l.huge.bytesPerSec, 6.2e9);
  assert.deepEqual(l.huge.samples, [5.6e9, 6.8e9]);
  assert.equal(l.small.sinkCpuMs, 170);
  assert.equal(l.winner, "huge");
  assert.equal(l.best, l.huge);
});
