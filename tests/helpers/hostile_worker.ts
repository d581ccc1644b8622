/**
 * Test helper: a Worker that loads mutated streams into a destination guest of its own with
 * the destination's loader itself (runDestination over an in-memory channel that serves the
 * stream's bytes at once: no sockets, no agent), and checks each as unit/hostile_loader.ts
 * does — it loads (the mutation kept it valid) or fails that attempt with one clear error,
 * never runs the guest before POSTCOPY_RUN, never hangs. Started by
 * tests/unit/hostile_pool.ts with a seed and a number of runs; answers with its tally, or the
 * first failing stream.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import fc from "fast-check";
import { Machine } from "../../adapters/memory/machine.ts";
import type { Channel } from "../../domain/ports.ts";
import { loadStream } from "./engine_pair.ts";
import {
  applyMutation,
  assertClearError,
  describeMutation,
  mutationArb,
  SMALL_LAYOUT,
  validFrames,
} from "./hostile_streams.ts";

/** What the pool asks of one Worker. */
export interface HostileJob {
  seed: number;
  runs: number;
}

/** What one Worker answers. */
export interface HostileResult {
  tally: { loaded: number; failed: number; paused: number };
  /** The first stream that broke a rule (fast-check's report), if any. */
  failure?: string;
}

const FAILED_PREFIX = "load of migration failed: ";

/** A peer that has sent `bytes` (then end of stream) and reads whatever comes back. */
class BytesChannel implements Channel {
  #off = 0;
  #closed = false;
  constructor(readonly bytes: Uint8Array) {}
  read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new Error("read on a closed channel"));
    if (this.#off >= this.bytes.length) return Promise.resolve(null);
    const n = Math.min(p.length, this.bytes.length - this.#off);
    p.set(this.bytes.subarray(this.#off, this.#off + n));
    this.#off += n;
    return Promise.resolve(n);
  }
  write(p: Uint8Array): Promise<number> {
    return this.#closed ? Promise.reject(new Error("closed")) : Promise.resolve(p.length);
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.#closed = true;
  }
}

async function load(dst: Machine, bytes: Uint8Array) {
  const { main: d, done } = loadStream(dst, new BytesChannel(bytes));
  let timer: ReturnType<typeof setTimeout> | undefined;
  const ok = await Promise.race([
    done,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the loader hung (15 s)")), 15_000);
    }),
  ]).finally(() => clearTimeout(timer));
  return { ok, seen: d.seen, errors: d.errors };
}

async function run(job: HostileJob): Promise<HostileResult> {
  const dst = await Machine.create({
    blocks: SMALL_LAYOUT.map((b) => ({ ...b })),
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  const tally = { loaded: 0, failed: 0, paused: 0 };
  const layout = SMALL_LAYOUT;
  const bases = [
    validFrames({ layout }),
    validFrames({ layout, returnPath: true }),
    validFrames({ layout, postcopy: true }),
    validFrames({ layout, eof: false }),
  ];
  try {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bases.length - 1 }), mutationArb, async (which, m) => {
        const what = `base ${which}, ${describeMutation(m)}`;
        const r = await load(dst, applyMutation(bases[which], m, false));
        if (r.ok) {
          if (r.seen.at(-1) !== "completed") throw new Error(`${what}: loaded as ${r.seen}`);
          tally.loaded++;
        } else {
          if (r.seen.at(-1) !== "failed") throw new Error(`${what}: ended ${r.seen}`);
          const f = r.errors.filter((e) => e.startsWith(FAILED_PREFIX));
          if (f.length !== 1) throw new Error(`${what}: ${f.length} failures: ${r.errors}`);
          assertClearError(f[0].slice(FAILED_PREFIX.length), what);
          if (r.seen.includes("postcopy-paused")) {
            if (dst.runstate === "inmigrate") throw new Error(`${what}: paused before RUN`);
            tally.paused++;
          }
          if (!r.seen.includes("postcopy-active") && dst.runstate !== "inmigrate") {
            throw new Error(`${what}: the guest ran (${dst.runstate}) before postcopy`);
          }
          tally.failed++;
        }
        if (dst.runstate !== "inmigrate") {
          dst.vcpu.setRunstate("paused");
          dst.vcpu.setRunstate("inmigrate");
          if (!await dst.vcpu.waitParkedAsync(5000)) throw new Error("the vCPU did not park");
        }
      }),
      { seed: job.seed, numRuns: job.runs, endOnFailure: true },
    );
    return { tally };
  } catch (e) {
    const cause = e instanceof Error && e.cause instanceof Error ? `\ncause: ${e.cause.stack}` : "";
    return { tally, failure: (e instanceof Error ? e.message : String(e)) + cause };
  } finally {
    await dst.dispose();
  }
}

self.onmessage = async (e: MessageEvent<HostileJob>) => {
  self.postMessage(await run(e.data));
};
