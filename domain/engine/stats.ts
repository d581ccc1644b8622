/**
 * Counters the data-path Workers measure and the main thread reads, shared through one
 * Float64Array so `GET /migrations/current` always sees fresh numbers without messages.
 *
 * @module
 */

/** Counter names and their slots. Units: bytes, pages, milliseconds, Mbit/s. */
export const STAT = {
  transferred: 0,
  remaining: 1,
  total: 2,
  duplicate: 3,
  normal: 4,
  dirtyPagesRate: 5,
  mbps: 6,
  dirtySyncCount: 7,
  postcopyRequests: 8,
  multifdBytes: 9,
  expectedDowntime: 10,
  setupTime: 11,
  downtime: 12,
  totalTime: 13,
  startTime: 14,
  thresholdSize: 15,
  bandwidth: 16,
  throttle: 17,
  blocktime: 18,
  xbzrleCacheSize: 19,
  xbzrleBytes: 20,
  xbzrlePages: 21,
  xbzrleCacheMiss: 22,
  xbzrleCacheMissRate: 23,
  xbzrleOverflow: 24,
  compressPages: 25,
  compressBusy: 26,
  compressBusyRate: 27,
  compressedSize: 28,
  compressionRate: 29,
  /** How many syncs wrote afterSync slots (a ring of AFTER_SYNC). */
  afterSyncCount: 30,
  afterSync: 31,
  /** With XBZRLE or compression: wire bytes a pending page costs (0 = a whole page). */
  wirePerPage: 36,
  /** COLO: checkpoints taken (primary) or applied (secondary). */
  coloCheckpoints: 37,
  /** COLO: of them, those the x-checkpoint-delay timer started. */
  coloPeriodic: 38,
  /** COLO: of them, those started at once (x-checkpoint-delay changed, the output compare). */
  coloTriggered: 39,
  /** COLO: the primary's pause in the last checkpoint (ms), and p50 / p99 over the last 1024. */
  coloPauseLast: 40,
  coloPauseP50: 41,
  coloPauseP99: 42,
  /** COLO: bytes of the last checkpoint, and of all. */
  coloBytesLast: 43,
  coloBytesTotal: 44,
  /** Block migration (disk_section.ts): 1 once the disk section is set up. */
  diskActive: 45,
  /** Bytes of the drives sent (a block sent again counts again; zero blocks by their size). */
  diskTransferred: 46,
  /** Bytes of the drives marked to send. */
  diskRemaining: 47,
  /** Bytes of the drives migrated (their sizes). */
  diskTotal: 48,
  /** COLO output compare (primary, main thread): record pairs compared. */
  coloCompared: 52,
  /** COLO output compare: of them, pairs that differed. */
  coloMismatched: 53,
  /** COLO output compare: the primary's records held now. */
  coloHeld: 54,
} as const;

const SLOTS = 56;

/** Ring size of the RAM-left-after-sync history. */
export const AFTER_SYNC = 4;

/** The RAM left after each of the last syncs, oldest first. */
export function afterSyncHistory(stats: Float64Array): number[] {
  const n = stats[STAT.afterSyncCount];
  const out: number[] = [];
  for (let k = Math.max(0, n - AFTER_SYNC); k < n; k++) {
    out.push(stats[STAT.afterSync + (k % AFTER_SYNC)]);
  }
  return out;
}

/** Allocates a zeroed counter block. */
export function createStats(): Float64Array {
  return new Float64Array(new SharedArrayBuffer(SLOTS * 8));
}
