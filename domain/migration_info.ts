/**
 * Builds QMP's MigrationInfo from a migration, member for member as the seed's
 * fill_source_migration_info / fill_destination_migration_info / populate_ram_info.
 *
 * @module
 */
import { PAGE_SIZE } from "../adapters/memory/layout.ts";
import type { Migration } from "./migration.ts";
import type { MigrationStatus } from "./state_machine.ts";
import { afterSyncHistory, STAT } from "./engine/stats.ts";
import { assessConvergence, type Convergence } from "./convergence.ts";
import { assessProgress, type Progress } from "./progress.ts";

/** QMP MigrationStats. */
export interface RamStats {
  transferred: number;
  remaining?: number;
  total: number;
  duplicate: number;
  skipped: number;
  normal: number;
  "normal-bytes": number;
  "dirty-pages-rate"?: number;
  mbps: number;
  "dirty-sync-count": number;
  "postcopy-requests": number;
  "page-size": number;
  "multifd-bytes": number;
}

/** QMP MigrationInfo (the members Ferry can set), plus Ferry's `x-` additions. */
export interface MigrationInfo {
  status: MigrationStatus;
  ram?: RamStats;
  "total-time"?: number;
  "expected-downtime"?: number;
  downtime?: number;
  "setup-time"?: number;
  "cpu-throttle-percentage"?: number;
  "error-desc"?: string;
  "postcopy-blocktime"?: number;
  "postcopy-vcpu-blocktime"?: number[];
  "xbzrle-cache"?: {
    "cache-size": number;
    bytes: number;
    pages: number;
    "cache-miss": number;
    "cache-miss-rate": number;
    overflow: number;
  };
  compression?: {
    pages: number;
    busy: number;
    "busy-rate": number;
    "compressed-size": number;
    "compression-rate": number;
  };
  /** Block migration's drives (the seed's populate_disk_info), in bytes. */
  disk?: { transferred: number; remaining: number; total: number };
  "x-colo"?: ColoInfo;
  "x-convergence"?: Convergence;
  "x-progress"?: Progress;
  "x-history"?: { time: string; status: string; note?: string; repeats?: number; last?: string }[];
  "x-id"?: string;
  "x-side"?: "source" | "destination";
}

/** Ferry: COLO's checkpoint counters (the seed's TODO "display COLO specific information"). */
export interface ColoInfo {
  checkpoints: number;
  "checkpoints-periodic": number;
  "checkpoints-triggered": number;
  "pause-last-ms": number;
  "pause-p50-ms": number;
  "pause-p99-ms": number;
  "checkpoint-bytes-last": number;
  "checkpoint-bytes-total": number;
  "records-compared": number;
  "records-mismatched": number;
  "records-held": number;
}

/** The checkpoint counters, in status colo and once a checkpoint was taken. */
function coloInfo(m: Migration, info: MigrationInfo): void {
  const s = m.stats;
  if (m.status !== "colo" && s[STAT.coloCheckpoints] === 0) return;
  const ms = (v: number) => Math.round(v * 1000) / 1000;
  info["x-colo"] = {
    checkpoints: s[STAT.coloCheckpoints],
    "checkpoints-periodic": s[STAT.coloPeriodic],
    "checkpoints-triggered": s[STAT.coloTriggered],
    "pause-last-ms": ms(s[STAT.coloPauseLast]),
    "pause-p50-ms": ms(s[STAT.coloPauseP50]),
    "pause-p99-ms": ms(s[STAT.coloPauseP99]),
    "checkpoint-bytes-last": s[STAT.coloBytesLast],
    "checkpoint-bytes-total": s[STAT.coloBytesTotal],
    "records-compared": s[STAT.coloCompared],
    "records-mismatched": s[STAT.coloMismatched],
    "records-held": s[STAT.coloHeld],
  };
}

/** populate_ram_info's xbzrle-cache and compression members, when their capability is on. */
function codecInfo(m: Migration, info: MigrationInfo): void {
  const s = m.stats;
  if (m.caps.xbzrle) {
    info["xbzrle-cache"] = {
      "cache-size": s[STAT.xbzrleCacheSize],
      bytes: s[STAT.xbzrleBytes],
      pages: s[STAT.xbzrlePages],
      "cache-miss": s[STAT.xbzrleCacheMiss],
      "cache-miss-rate": s[STAT.xbzrleCacheMissRate],
      overflow: s[STAT.xbzrleOverflow],
    };
  }
  if (m.caps.compress) {
    info.compression = {
      pages: s[STAT.compressPages],
      busy: s[STAT.compressBusy],
      "busy-rate": s[STAT.compressBusyRate],
      "compressed-size": s[STAT.compressedSize],
      "compression-rate": s[STAT.compressionRate],
    };
  }
}

function ram(m: Migration, completed: boolean): RamStats {
  const s = m.stats;
  const r: RamStats = {
    transferred: s[STAT.transferred],
    total: s[STAT.total],
    duplicate: s[STAT.duplicate],
    skipped: 0,
    normal: s[STAT.normal],
    "normal-bytes": s[STAT.normal] * PAGE_SIZE,
    mbps: Math.round(s[STAT.mbps] * 1000) / 1000,
    "dirty-sync-count": s[STAT.dirtySyncCount],
    "postcopy-requests": s[STAT.postcopyRequests],
    "page-size": PAGE_SIZE,
    "multifd-bytes": s[STAT.multifdBytes],
  };
  if (!completed) {
    r.remaining = s[STAT.remaining];
    r["dirty-pages-rate"] = s[STAT.dirtyPagesRate];
  }
  return r;
}

function setProgress(info: MigrationInfo, progress: Progress | undefined): void {
  if (progress) info["x-progress"] = progress;
}

/** populate_disk_info: the drives' counters while block migration is active. */
function diskInfo(m: Migration, info: MigrationInfo): void {
  const s = m.stats;
  if (s[STAT.diskActive] !== 1) return;
  info.disk = {
    transferred: s[STAT.diskTransferred],
    remaining: s[STAT.diskRemaining],
    total: s[STAT.diskTotal],
  };
}

/** The seed's fill_source_migration_info for one outgoing migration. */
function sourceInfo(m: Migration): MigrationInfo {
  const s = m.stats;
  const info: MigrationInfo = { status: m.status };
  switch (m.status) {
    case "active":
    case "cancelling":
    case "postcopy-active":
    case "pre-switchover":
    case "device":
    case "postcopy-paused":
    case "postcopy-recover":
      info["total-time"] = Date.now() - s[STAT.startTime];
      info["expected-downtime"] = s[STAT.expectedDowntime];
      info["setup-time"] = s[STAT.setupTime];
      info.ram = ram(m, false);
      diskInfo(m, info);
      codecInfo(m, info);
      if (m.status === "active") info["x-convergence"] = convergenceOf(m);
      setProgress(info, progressOf(m, info["x-convergence"]));
      if (s[STAT.throttle] > 0) info["cpu-throttle-percentage"] = s[STAT.throttle];
      break;
    case "setup":
    case "completed":
      setProgress(info, progressOf(m));
      if (m.status === "setup") break;
      info["total-time"] = s[STAT.totalTime];
      info.downtime = s[STAT.downtime];
      info["setup-time"] = s[STAT.setupTime];
      info.ram = ram(m, true);
      // Beyond the seed (which drops it once completed): what the drives' migration moved.
      diskInfo(m, info);
      codecInfo(m, info);
      break;
    case "failed":
      if (m.error) info["error-desc"] = m.error;
      break;
  }
  return info;
}

/** What query-time settings change in the answer. */
export interface InfoOptions {
  /** The postcopy-blocktime capability: report blocktime on a completed destination. */
  blocktime?: boolean;
  /** Include the migration's history (status changes and policy escalations). */
  history?: boolean;
}

/** With XBZRLE or compression a pending page costs what the last pass measured. */
function pageCost(s: Float64Array): number {
  return s[STAT.wirePerPage] > 0 ? s[STAT.wirePerPage] / PAGE_SIZE : 1;
}

/** The convergence verdict of a running outgoing migration, from its measured counters. */
export function convergenceOf(m: Migration): Convergence {
  const s = m.stats;
  const cost = pageCost(s);
  return assessConvergence({
    remaining: s[STAT.remaining] * cost + s[STAT.diskRemaining],
    bandwidth: s[STAT.bandwidth] * 1000,
    dirtyRate: s[STAT.dirtyPagesRate] * PAGE_SIZE,
    downtimeLimit: Number(m.params["downtime-limit"] ?? 300),
    afterSync: afterSyncHistory(s).map((r) => r * cost),
    maxBandwidth: Number(m.params["max-bandwidth"] ?? 0),
    autoConverge: !!m.caps["auto-converge"],
    postcopy: !!m.caps["postcopy-ram"],
    throttle: s[STAT.throttle],
  });
}

/** A precopy pass as the main thread first saw it: its sync count and `transferred` then. */
interface PassSeen {
  syncs: number;
  transferred: number;
}

const passesSeen = new WeakMap<Migration, PassSeen>();

/**
 * RAM left to send, as of the latest dirty-log sync at least. The source Worker refreshes
 * `remaining` and `transferred` after each chunk it sends, not at a sync, so for up to a
 * chunk after one (half a second at 16 MiB/s) `remaining` still says what was left before
 * it — often 0 — and before the first chunk it says 0 of everything. Until `transferred`
 * moves after a sync was first seen, what that sync left (all of RAM before the first) is
 * the truth; afterwards `remaining` is fresh again.
 */
export function remainingAfterSync(m: Migration): number {
  const s = m.stats;
  if (m.status === "completed") return s[STAT.remaining];
  const syncs = s[STAT.afterSyncCount];
  let seen = passesSeen.get(m);
  if (seen?.syncs !== syncs) {
    seen = { syncs, transferred: s[STAT.transferred] };
    passesSeen.set(m, seen);
  }
  if (s[STAT.transferred] !== seen.transferred) return s[STAT.remaining];
  const left = afterSyncHistory(s).at(-1);
  return Math.max(s[STAT.remaining], left ?? s[STAT.total]);
}

/**
 * The `x-progress` of an outgoing migration, from the same counters (and verdict) the
 * answer reports; undefined when its status has none.
 */
export function progressOf(m: Migration, convergence?: Convergence): Progress | undefined {
  const s = m.stats;
  const remaining = remainingAfterSync(m);
  return assessProgress({
    status: m.status,
    total: s[STAT.total],
    remaining,
    remainingCost: remaining * pageCost(s),
    bandwidth: s[STAT.bandwidth] * 1000,
    downtimeLimit: Number(m.params["downtime-limit"] ?? 300),
    convergence,
  });
}

/** MigrationInfo for one migration of either side (with its id and side). */
export function migrationInfo(m: Migration, opts: InfoOptions = {}): MigrationInfo {
  const info = m.side === "source" ? sourceInfo(m) : { status: m.status } as MigrationInfo;
  if (m.side === "destination" && m.status === "failed" && m.error) info["error-desc"] = m.error;
  if (m.side === "destination" && m.status === "completed" && opts.blocktime) {
    // fill_destination_postcopy_migration_info: total, and per vCPU (Ferry has one).
    const ms = Math.round(m.stats[STAT.blocktime]);
    info["postcopy-blocktime"] = ms;
    info["postcopy-vcpu-blocktime"] = [ms];
  }
  coloInfo(m, info);
  if (opts.history) info["x-history"] = m.history.map((h) => ({ ...h }));
  info["x-id"] = m.id;
  info["x-side"] = m.side;
  return info;
}

/** query-migrate: the outgoing migration if there was one, else the incoming one. */
export function queryMigrate(
  outgoing: Migration | null,
  incoming: Migration | null,
  opts: InfoOptions = {},
): MigrationInfo {
  if (outgoing && outgoing.status !== "none") return migrationInfo(outgoing, opts);
  if (incoming && incoming.status !== "none") return migrationInfo(incoming, opts);
  return { status: "none" };
}
