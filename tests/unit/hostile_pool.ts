/**
 * Issue 18 item 3, hostile streams en masse: 10 000 mutated streams per run (flipped bytes,
 * truncation, huge lengths, runs outside a block, unknown types, dropped / duplicated /
 * inserted frames) loaded by the destination's loader itself, without sockets, in a pool of
 * Workers (tests/helpers/hostile_worker.ts). Each either still loads (the mutation kept it
 * valid) or fails that attempt with one clear error, never runs the guest before postcopy,
 * never hangs. The seed is logged; each Worker k runs seed + k.
 */
import assert from "node:assert/strict";
import type { HostileJob, HostileResult } from "../helpers/hostile_worker.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
const STREAMS = 10_000;
const WORKERS = Math.max(1, Math.min(4, navigator.hardwareConcurrency || 2));

Deno.test("hostile pool: 10 000 mutated streams each load or fail clearly, in a Worker pool", async () => {
  const url = new URL("../helpers/hostile_worker.ts", import.meta.url);
  const workers = Array.from({ length: WORKERS }, () => new Worker(url, { type: "module" }));
  try {
    const results = await Promise.all(
      workers.map((w, k) =>
        new Promise<HostileResult>((resolve, reject) => {
          w.onmessage = (e: MessageEvent<HostileResult>) => resolve(e.data);
          w.onerror = (e) => {
            e.preventDefault();
            reject(new Error(`hostile worker ${k} crashed: ${e.message}`));
          };
          const runs = Math.ceil(STREAMS / WORKERS);
          w.postMessage({ seed: seed + k, runs } satisfies HostileJob);
        })
      ),
    );
    const tally = { loaded: 0, failed: 0, paused: 0 };
    results.forEach((r, k) => {
      assert.equal(r.failure, undefined, `worker ${k} (seed ${seed + k}): ${r.failure}`);
      tally.loaded += r.tally.loaded;
      tally.failed += r.tally.failed;
      tally.paused += r.tally.paused;
    });
    console.log(`${WORKERS} workers: ${JSON.stringify(tally)}`);
    assert.ok(tally.loaded + tally.failed >= STREAMS, `${tally.loaded + tally.failed} streams`);
    assert.ok(tally.failed > STREAMS / 2, "most mutations break the stream");
  } finally {
    for (const w of workers) w.terminate();
  }
});
