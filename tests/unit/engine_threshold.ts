/**
 * The switchover threshold (issue 17: downtime ≤ downtime-limit × 1.1): it follows the
 * bandwidth of the last five 100 ms windows together, so one fast window cannot trigger a
 * switchover that the link then cannot carry within the limit.
 */
import assert from "node:assert/strict";
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { DEFAULT_CAPABILITIES, DEFAULT_PARAMETERS, liveParameters } from "../../domain/options.ts";
import { SourceCounters } from "../../domain/engine/source_counters.ts";
import type { PageSender } from "../../domain/engine/page_sender.ts";
import { createStats, STAT } from "../../domain/engine/stats.ts";

/**
 * Counters over a fake sender and link: `bytes()` is what was sent so far, `clock()` the clock
 * a dirty-log sync is timed by, and each sync takes `syncMs` by it.
 */
function fakeCounters(downtimeLimit: number, bytes: () => number, syncMs = 0) {
  const stats = createStats();
  let clock = 0;
  const sender = {
    pending: 1000,
    duplicate: 0,
    normal: 0,
    encoder: null,
    bitmap: new Uint8Array(8),
    sync: () => (clock += syncMs, 0),
  };
  const counters = new SourceCounters({
    stats,
    params: liveParameters({ ...DEFAULT_PARAMETERS, "downtime-limit": downtimeLimit }),
    caps: { ...DEFAULT_CAPABILITIES },
    pageSize: 4096,
    vcpu: { throttle: 0 } as unknown as VcpuControl,
    forceAutoConverge: () => false,
    sender: () => sender as unknown as PageSender,
    mfd: () => null,
    transferred: bytes,
    onPass: () => {},
    now: () => clock,
  });
  return { stats, counters };
}

Deno.test("threshold: the bandwidth of the last five windows together × downtime-limit", () => {
  let transferred = 0;
  const { stats, counters } = fakeCounters(300, () => transferred);
  let now = 1_000_000;
  counters.begin(now);
  // bytes per ms, each window 100 ms but the third (200 ms: a dirty-log sync ran long)
  const windows = [[870_000, 100], [1_160_000, 100], [500_000, 200], [950_000, 100]];
  const seen: { bytes: number; ms: number }[] = [];
  for (const [bytesPerMs, ms] of [...windows, [1_100_000, 100], [1_200_000, 100]]) {
    transferred += bytesPerMs * ms;
    now += ms;
    counters.update(now);
    assert.equal(stats[STAT.bandwidth], bytesPerMs, "bandwidth is the last window (QEMU's)");
    seen.push({ bytes: bytesPerMs * ms, ms });
    const last = seen.slice(-5);
    const rate = last.reduce((n, w) => n + w.bytes, 0) / last.reduce((n, w) => n + w.ms, 0);
    assert.equal(stats[STAT.thresholdSize], rate * 300);
  }
  // The last five: 1.16, 0.5 (200 ms), 0.95, 1.1, 1.2 GB/s → 5.41e8 bytes in 600 ms.
  assert.equal(Math.round(stats[STAT.thresholdSize]), Math.round((541_000_000 / 600) * 300));
  assert.ok(stats[STAT.thresholdSize] < 1_200_000 * 300, "below the last, fast window's");
});

Deno.test("switchover budget: the threshold less one more sync at the last one's duration", () => {
  let transferred = 0;
  // A dirty-log sync that takes 3 ms by the counters' clock.
  const { stats, counters } = fakeCounters(20, () => transferred, 3);
  counters.begin(0);
  // Before any window: no threshold, so nothing but an empty RAM can switch over.
  assert.equal(counters.switchoverBudget(), 0);
  transferred = 160_000_000; // 1.6 GB/s over 100 ms: 1.6e6 bytes per ms
  counters.update(100);
  assert.equal(stats[STAT.thresholdSize], 1_600_000 * 20, "QEMU's threshold-size, reported as is");
  assert.equal(counters.switchoverBudget(), 1_600_000 * 20, "no sync measured yet");
  counters.sync();
  assert.equal(counters.switchoverBudget(), 1_600_000 * 20 - 1_600_000 * 3);
  assert.equal(stats[STAT.thresholdSize], 1_600_000 * 20, "the reported threshold is unchanged");
});
