/**
 * The switchover threshold (issue 17: downtime ≤ downtime-limit × 1.1): it follows the slowest
 * of the last five 100 ms bandwidth windows, so one fast window cannot trigger a switchover
 * that the link then cannot carry within the limit.
 */
import assert from "node:assert/strict";
import type { VcpuControl } from "../adapters/memory/vcpu_control.ts";
import { DEFAULT_CAPABILITIES, DEFAULT_PARAMETERS, liveParameters } from "../domain/options.ts";
import { SourceCounters } from "../domain/engine/source_counters.ts";
import type { PageSender } from "../domain/engine/page_sender.ts";
import { createStats, STAT } from "../domain/engine/stats.ts";

Deno.test("threshold: the slowest of the last five bandwidth windows × downtime-limit", () => {
  const stats = createStats();
  let transferred = 0;
  const sender = {
    pending: 1000,
    duplicate: 0,
    normal: 0,
    encoder: null,
    bitmap: new Uint8Array(8),
  };
  const counters = new SourceCounters({
    stats,
    params: liveParameters({ ...DEFAULT_PARAMETERS, "downtime-limit": 300 }),
    caps: { ...DEFAULT_CAPABILITIES },
    pageSize: 4096,
    vcpu: { throttle: 0 } as unknown as VcpuControl,
    forceAutoConverge: () => false,
    sender: () => sender as unknown as PageSender,
    mfd: () => null,
    transferred: () => transferred,
    onPass: () => {},
  });
  let now = 1_000_000;
  counters.begin(now);
  const windows = [870_000, 1_160_000, 1_000_000, 950_000, 1_100_000, 1_200_000, 1_300_000];
  const seen: number[] = [];
  for (const bytesPerMs of windows) {
    transferred += bytesPerMs * 100;
    now += 100;
    counters.update(now);
    assert.equal(stats[STAT.bandwidth], bytesPerMs, "bandwidth is the last window (QEMU's)");
    seen.push(bytesPerMs);
    assert.equal(stats[STAT.thresholdSize], Math.min(...seen.slice(-5)) * 300);
  }
  assert.equal(stats[STAT.thresholdSize], 950_000 * 300, "the 0.87 GB/s window has aged out");
});
