/**
 * The source's measurements (the seed's migration_update_counters and the ram.c parts it
 * relies on): bandwidth and threshold every 100 ms, the dirty-log sync with its pass
 * count, dirty-pages-rate over periods of at least a second, auto-converge's throttle
 * steps, and QEMU's xbzrle-cache / compression members. Writes only the shared counters.
 *
 * @module
 */
import { countMarked } from "../../adapters/memory/dirty_log.ts";
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { Capabilities, LiveParameters } from "../options.ts";
import type { MultifdSource } from "./multifd_source.ts";
import type { PageSender } from "./page_sender.ts";
import { AFTER_SYNC, STAT } from "./stats.ts";

const BUFFER_DELAY = 100;
/**
 * The threshold uses the bandwidth over this many recent 100 ms windows together (bytes over
 * time). The last window alone (QEMU's choice) lets a switchover start right after a fast
 * window: 1 GiB idle guests here stopped with 344 MB pending under an estimate of 1.16 GB/s
 * and then sent it at 0.87 GB/s (downtime 410 ms under a 300 ms limit, 2026-12-06; the issue
 * allows limit × 1.1).
 */
const THRESHOLD_WINDOWS = 5;

/** What the counters read from the running migration. */
export interface CounterInputs {
  stats: Float64Array;
  params: LiveParameters;
  caps: Capabilities;
  pageSize: number;
  vcpu: VcpuControl;
  /** A policy turned auto-converge on. */
  forceAutoConverge: () => boolean;
  sender: () => PageSender;
  mfd: () => MultifdSource | null;
  /** Bytes sent over every channel so far. */
  transferred: () => number;
  /** Announces a dirty-log sync (MIGRATION_PASS). */
  onPass: (pass: number) => void;
  /** The clock a dirty-log sync is timed with, ms (default performance.now). */
  now?: () => number;
}

/** The source's counters. */
export class SourceCounters {
  /** Dirty-log syncs so far (QMP dirty-sync-count). */
  pass = 0;
  readonly #in: CounterInputs;
  #iterStart = 0;
  #iterBytes = 0;
  #rateStart = 0;
  #dirtied = 0;
  #periodBytes = 0;
  #dirtyRateHigh = 0;
  #missPeriod = { misses: 0, lookups: 0 };
  /** Bytes and pages sent when the current pass began. */
  #passMark = { bytes: 0, pages: 0 };
  /** Wire bytes per page sent over the last complete pass (0 until one was measured). */
  #bytesPerPage = 0;
  /** Bytes and ms of the last THRESHOLD_WINDOWS windows. */
  readonly #windows: { bytes: number; ms: number }[] = [];
  /** Bytes per ms of those windows together (what the threshold is made of). */
  #rate = 0;
  /** How long the last dirty-log sync took, ms (the switchover makes one more). */
  #syncMs = 0;

  /** Counts for one migration. */
  constructor(inputs: CounterInputs) {
    this.#in = inputs;
  }

  /** Starts the first bandwidth window and dirty-rate period (end of setup). */
  begin(now: number): void {
    this.#iterStart = this.#rateStart = now;
    this.#iterBytes = this.#in.transferred();
    this.#periodBytes = this.#iterBytes;
  }

  /** Sets the pass count after setup's first sync (the bulk stage). */
  setupPass(): void {
    this.pass = 1;
    this.#in.stats[STAT.dirtySyncCount] = 1;
    this.#in.onPass(1);
  }

  /** migration_update_counters: bandwidth, threshold, mbps, expected-downtime every 100 ms. */
  update(now: number): void {
    const { stats, params, pageSize } = this.#in;
    const sender = this.#in.sender();
    const mfd = this.#in.mfd();
    stats[STAT.transferred] = this.#in.transferred();
    stats[STAT.multifdBytes] = mfd?.bytes ?? 0;
    stats[STAT.remaining] = (mfd ? countMarked(sender.bitmap) : sender.pending) * pageSize;
    const extra = mfd?.pages() ?? { normal: 0, duplicate: 0 };
    stats[STAT.duplicate] = sender.duplicate + extra.duplicate;
    stats[STAT.normal] = sender.normal + extra.normal;
    stats[STAT.throttle] = this.#in.vcpu.throttle;
    this.encoder();
    if (now < this.#iterStart + BUFFER_DELAY) return;
    const transferred = this.#in.transferred() - this.#iterBytes;
    const spent = now - this.#iterStart;
    const bandwidth = transferred / spent; // bytes per ms
    stats[STAT.bandwidth] = bandwidth;
    this.#windows.push({ bytes: transferred, ms: spent });
    if (this.#windows.length > THRESHOLD_WINDOWS) this.#windows.shift();
    const recent = this.#windows.reduce((a, w) => ({ bytes: a.bytes + w.bytes, ms: a.ms + w.ms }));
    this.#rate = recent.bytes / recent.ms;
    stats[STAT.thresholdSize] = this.#rate * params["downtime-limit"];
    stats[STAT.mbps] = transferred * 8 / (spent / 1000) / 1e6;
    if (stats[STAT.dirtyPagesRate] && transferred > 10000) {
      const pending = stats[STAT.remaining] / pageSize;
      stats[STAT.expectedDowntime] = Math.round(this.pendingCost(pending) / bandwidth);
    }
    this.#iterStart = now;
    this.#iterBytes = this.#in.transferred();
  }

  /** QEMU's xbzrle-cache and compression members, from the encoder. */
  encoder(): void {
    const { stats } = this.#in;
    const enc = this.#in.sender().encoder;
    const x = enc?.xbzrle;
    if (x) {
      stats[STAT.xbzrleCacheSize] = x.cacheSize;
      stats[STAT.xbzrleBytes] = x.bytes;
      stats[STAT.xbzrlePages] = x.pages;
      stats[STAT.xbzrleCacheMiss] = x.cacheMiss;
      stats[STAT.xbzrleOverflow] = x.overflow;
    }
    const c = enc?.compression();
    if (c) {
      stats[STAT.compressPages] = c.pages;
      stats[STAT.compressBusy] = c.busy;
      stats[STAT.compressBusyRate] = c.busyRate;
      stats[STAT.compressedSize] = c.compressedSize;
      stats[STAT.compressionRate] = c.compressionRate;
    }
  }

  /** Pages that went out in any form (whole, zero, XBZRLE delta, compressed). */
  #pagesSent(): number {
    const sender = this.#in.sender();
    const extra = this.#in.mfd()?.pages() ?? { normal: 0, duplicate: 0 };
    const enc = sender.encoder;
    return sender.normal + sender.duplicate + extra.normal + extra.duplicate +
      (enc?.xbzrle?.pages ?? 0) + (enc?.compression()?.pages ?? 0);
  }

  /**
   * What sending `pages` pending pages will cost on the wire. QEMU counts whole pages,
   * which with XBZRLE or compression can keep a migration from ever converging (its
   * bandwidth is measured in encoded bytes); with either on, Ferry uses the bytes per page
   * the last pass really cost. Plain migrations keep QEMU's whole-page count.
   */
  pendingCost(pages: number): number {
    const { caps, pageSize } = this.#in;
    const encoded = caps.xbzrle || caps.compress;
    if (!encoded || this.#bytesPerPage === 0) return pages * pageSize;
    return pages * Math.min(this.#bytesPerPage, pageSize + 64);
  }

  /**
   * What may be left to send when the switchover starts, in wire bytes: the threshold (QEMU's
   * threshold-size: bandwidth × downtime-limit) less the one more dirty-log sync the switchover
   * makes, at the last sync's measured duration, which QEMU's threshold leaves out. (What is
   * staged or on its way when the pass ends is written out before the guest stops:
   * precopy_phase.ts.) Measured 2026-12-07 (the bench's W, a 1 GiB WebAssembly guest,
   * downtime-limit 20 ms): syncs of 0.1–1.5 ms, downtimes of 19–24 ms before this and the
   * flush.
   */
  switchoverBudget(): number {
    return this.#in.stats[STAT.thresholdSize] - this.#rate * this.#syncMs;
  }

  /** A dirty-log sync (migration_bitmap_sync) and what is measured at it. */
  sync(): void {
    const clock = this.#in.now ?? (() => performance.now());
    const t0 = clock();
    this.#sync();
    this.#syncMs = clock() - t0;
  }

  #sync(): void {
    const { stats, pageSize } = this.#in;
    const sender = this.#in.sender();
    const sent = this.#pagesSent() - this.#passMark.pages;
    const bytes = this.#in.transferred() - this.#passMark.bytes;
    if (sent > 0 && this.pass > 1) this.#bytesPerPage = bytes / sent; // not the bulk stage
    const encoded = this.#in.caps.xbzrle || this.#in.caps.compress;
    if (encoded) stats[STAT.wirePerPage] = Math.min(this.#bytesPerPage, pageSize + 64);
    this.#passMark = { bytes: this.#in.transferred(), pages: this.#pagesSent() };
    this.#dirtied += sender.sync();
    this.pass++;
    const enc = sender.encoder;
    if (enc) {
      enc.generation = this.pass;
      enc.bulk = false; // the bulk stage is the first pass only
      const x = enc.xbzrle;
      if (x) {
        const lookups = x.lookups - this.#missPeriod.lookups;
        if (lookups > 0) {
          stats[STAT.xbzrleCacheMissRate] = (x.cacheMiss - this.#missPeriod.misses) / lookups;
        }
        this.#missPeriod = { misses: x.cacheMiss, lookups: x.lookups };
      }
    }
    stats[STAT.dirtySyncCount] = this.pass;
    this.#in.onPass(this.pass);
    const now = Date.now();
    if (now - this.#rateStart >= 1000) {
      stats[STAT.dirtyPagesRate] = Math.round(this.#dirtied * 1000 / (now - this.#rateStart));
      this.#autoConverge(this.#dirtied * pageSize, this.#in.transferred() - this.#periodBytes);
      this.#rateStart = now;
      this.#periodBytes = this.#in.transferred();
      this.#dirtied = 0;
    }
  }

  /**
   * What every section had left right after a sync (summed over the sections, in bytes):
   * the history the convergence verdict and `remaining` read (stats.ts, afterSync).
   */
  recordPending(bytes: number): void {
    const { stats } = this.#in;
    const k = stats[STAT.afterSyncCount];
    stats[STAT.afterSync + (k % AFTER_SYNC)] = bytes;
    stats[STAT.afterSyncCount] = k + 1;
  }

  /**
   * Auto-converge: when the bytes dirtied in a period exceed half of those sent, twice,
   * throttle the vCPU to cpu-throttle-initial, then up by cpu-throttle-increment to
   * max-cpu-throttle.
   */
  #autoConverge(dirtyBytes: number, sentBytes: number): void {
    const { caps, params, stats, vcpu } = this.#in;
    const on = caps["auto-converge"] || this.#in.forceAutoConverge();
    if (!on || dirtyBytes <= sentBytes / 2) return;
    if (++this.#dirtyRateHigh < 2) return;
    this.#dirtyRateHigh = 0;
    const now = vcpu.throttle;
    const next = now === 0
      ? params["cpu-throttle-initial"]
      : Math.min(now + params["cpu-throttle-increment"], params["max-cpu-throttle"]);
    vcpu.throttle = next;
    stats[STAT.throttle] = next;
  }
}
