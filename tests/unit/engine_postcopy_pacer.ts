/**
 * max-postcopy-bandwidth: the background pages' pacer (domain/engine/postcopy_pacer.ts) on a
 * simulated clock. Over any run it sends what the limit allows, within one window's budget
 * and one page, however small the limit (the old pacer sent a 64-page chunk per 100 ms
 * window: ~40× a 64 KiB/s limit), and it does not hold back below the limit either.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { PACER_WINDOW_MS, PostcopyPacer } from "../../domain/engine/postcopy_pacer.ts";

const PAGE = 4096;
const CHUNK = 64;
/** Bytes a page costs on the wire beyond its data (the frame header), at most. */
const OVERHEAD = 16;

/** Runs the pacer for `ms` of simulated time; sending one page takes `pageMs`. */
function simulate(limit: number, ms: number, pageMs: number, overhead: number) {
  let t = 0;
  let bytes = 0;
  let maxPages = 0;
  const pacer = new PostcopyPacer(t);
  while (t < ms) {
    const step = pacer.next(limit, t, PAGE, CHUNK);
    if ("waitMs" in step) {
      assert.ok(step.waitMs > 0 && step.waitMs <= PACER_WINDOW_MS, `wait ${step.waitMs}`);
      t += step.waitMs;
      continue;
    }
    maxPages = Math.max(maxPages, step.pages);
    const sent = step.pages * (PAGE + overhead);
    pacer.sent(sent);
    bytes += sent;
    t += Math.max(0.001, step.pages * pageMs);
  }
  return { bytes, elapsed: t, maxPages };
}

Deno.test("postcopy pacer: what it sends stays within the limit, one window and a page; it does not starve either", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  fc.assert(
    fc.property(
      fc.integer({ min: 1024, max: 1 << 30 }),
      fc.integer({ min: 1_000, max: 20_000 }),
      fc.double({ min: 0.0001, max: 0.05, noNaN: true }),
      fc.integer({ min: 0, max: OVERHEAD }),
      (limit, ms, pageMs, overhead) => {
        const { bytes, elapsed, maxPages } = simulate(limit, ms, pageMs, overhead);
        const window = limit / (1000 / PACER_WINDOW_MS);
        const page = PAGE + overhead;
        const allowed = (limit * elapsed) / 1000 + window + page;
        assert.ok(bytes <= allowed, `${bytes} bytes in ${elapsed} ms at ${limit} B/s`);
        // Sending is fast enough to reach the limit unless a page takes longer than its share.
        if (pageMs * CHUNK < PACER_WINDOW_MS / 2 && page * 1000 / limit > pageMs) {
          const floor = (limit * (elapsed - 2 * PACER_WINDOW_MS)) / 1000 - window - page;
          assert.ok(bytes >= floor, `only ${bytes} bytes in ${elapsed} ms at ${limit} B/s`);
        }
        assert.ok(maxPages >= 1 && maxPages <= CHUNK);
      },
    ),
    { seed },
  );
});

Deno.test("postcopy pacer: 64 KiB/s moves a page at a time, 64 KiB a second; unlimited moves whole chunks", () => {
  const slow = simulate(64 << 10, 10_000, 0.01, 0);
  assert.equal(slow.maxPages, 1);
  assert.ok(slow.bytes <= 64 * 1024 * 10 + 6554 + PAGE, `${slow.bytes} bytes in 10 s`);
  assert.ok(slow.bytes >= 64 * 1024 * 9.5, `${slow.bytes} bytes in 10 s`);
  const pacer = new PostcopyPacer(0);
  for (let t = 0; t < 1000; t += 10) {
    assert.deepEqual(pacer.next(0, t, PAGE, CHUNK), { pages: CHUNK });
    pacer.sent(CHUNK * PAGE);
  }
});
