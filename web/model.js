/**
 * The dashboard's pure parts: number formatting (MiB, Mbit/s, ms) and the progress
 * tracker whose bar never runs backwards within a dirty-log pass.
 *
 * @module
 */

const KIB = 1024;
const UNITS = ["B", "KiB", "MiB", "GiB", "TiB"];
/** Passes the progress tracker's bytes-per-pass list keeps (the newest). */
export const MAX_PASSES = 1000;

/**
 * Three significant digits, no trailing ".0".
 * @param {number} n
 * @returns {string}
 */
function sig3(n) {
  const abs = Math.abs(n);
  const digits = abs >= 100 ? 0 : abs >= 10 ? 1 : 2;
  const text = n.toFixed(digits);
  return digits === 0 ? text : text.replace(/\.?0+$/, "");
}

/**
 * Bytes as B/KiB/MiB/GiB, e.g. 268435456 → "256 MiB".
 * @param {number | undefined} n
 * @returns {string}
 */
export function formatBytes(n) {
  if (n === undefined || !Number.isFinite(n)) return "–";
  let v = n;
  let i = 0;
  while (Math.abs(v) >= KIB && i < UNITS.length - 1) {
    v /= KIB;
    i++;
  }
  return `${i === 0 ? String(Math.round(v)) : sig3(v)} ${UNITS[i]}`;
}

/**
 * GET /machine's `x-ram-backing` in a few words: the page size asked for guest RAM and, for
 * huge pages, how much of the RAM they back now, e.g. "2 MiB pages: 1020 MiB of 1 GiB".
 * @param {Record<string, any> | null | undefined} rb x-ram-backing
 * @param {number | undefined} ramSize the guest's ram-size
 * @returns {string}
 */
export function formatRamBacking(rb, ramSize) {
  if (!rb) return "–";
  if (rb["page-size"] === 4096) return `4 KiB pages (huge pages ${rb["huge-pages"]})`;
  const backed = rb["huge-page-bytes"];
  const of = backed === null ? "unknown" : `${formatBytes(backed)} of ${formatBytes(ramSize)}`;
  return `${formatBytes(rb["page-size"])} pages: ${of}`;
}

/**
 * QMP's mbps (Mbit/s) as Mbit/s or Gbit/s.
 * @param {number | undefined} mbps
 * @returns {string}
 */
export function formatMbps(mbps) {
  if (mbps === undefined || !Number.isFinite(mbps)) return "–";
  return mbps >= 1000 ? `${sig3(mbps / 1000)} Gbit/s` : `${sig3(mbps)} Mbit/s`;
}

/**
 * Milliseconds as ms, s or min.
 * @param {number | undefined} ms
 * @returns {string}
 */
export function formatMs(ms) {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${sig3(ms / 1000)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)} min ${s % 60} s`;
}

/**
 * A rate with k/M suffixes, e.g. 12345 → "12.3 k".
 * @param {number | undefined} n
 * @returns {string}
 */
export function formatCount(n) {
  if (n === undefined || !Number.isFinite(n)) return "–";
  if (Math.abs(n) >= 1e6) return `${sig3(n / 1e6)} M`;
  if (Math.abs(n) >= 1e3) return `${sig3(n / 1e3)} k`;
  return String(Math.round(n));
}

/**
 * @typedef {object} PassRecord
 * @property {number} pass the dirty-sync count that started it
 * @property {number} [last] the last pass of a run of passes that began with no reading of
 *   the counters between them (quick passes): their bytes are only known together
 * @property {number} sent bytes transferred during it (or the run) so far
 */

/**
 * The agent's `x-progress` member (domain/progress.ts): what every client displays.
 * @typedef {object} Progress
 * @property {number} percent 0–100, 100 only once completed
 * @property {string} state estimating, converging, stalled, not-converging, switchover,
 *   postcopy, cancelling or completed
 * @property {number} [eta-ms]
 * @property {number} [expected-downtime]
 * @property {"estimating" | "fits" | "too-long"} [fits]
 */

/**
 * @typedef {object} ProgressView
 * @property {string | null} id the migration followed
 * @property {number} pass the pass the value belongs to (dirty-sync-count; 0 before the first)
 * @property {number} value the bar's fraction, 0..1: the agent's `x-progress` percent
 * @property {Progress | undefined} progress the agent's last `x-progress`
 * @property {number | undefined} transferred
 * @property {number | undefined} remaining
 * @property {number | undefined} total
 * @property {DiskCounters | undefined} disk the drives' counters, when the migration moves a disk
 * @property {PassRecord[]} passes every pass seen, oldest first
 */

/**
 * query-migrate's `disk` member (populate_disk_info): the drives' bytes.
 * @typedef {object} DiskCounters
 * @property {number} transferred
 * @property {number} remaining
 * @property {number} total
 */

/**
 * Follows one migration: the bar shows the agent's `x-progress` percent as it is (one
 * formula for every client; a dirty-log sync lowers it, with the new pass number), and
 * the bytes sent in each pass are kept from the `ram` counters and MIGRATION_PASS events.
 */
export class ProgressTracker {
  /** @type {string | null} */
  #id = null;
  #pass = 0;
  #value = 0;
  /** @type {Progress | undefined} */
  #progress = undefined;
  /** @type {{ transferred?: number, remaining?: number, total?: number }} */
  #ram = {};
  /** @type {DiskCounters | undefined} */
  #disk = undefined;
  /** Readings of the `ram` counters so far (a pass start is known only from a fresh one). */
  #readings = 0;
  /** @type {Map<number, { start: number, reading: number }>} pass → transferred when it began */
  #starts = new Map();
  /** The newest pass in #starts (0: none). */
  #latest = 0;

  /**
   * Starts over for migration `id`.
   * @param {string | null} id
   */
  reset(id) {
    this.#id = id;
    this.#pass = 0;
    this.#value = 0;
    this.#progress = undefined;
    this.#ram = {};
    this.#disk = undefined;
    this.#readings = 0;
    this.#starts = new Map();
    this.#latest = 0;
  }

  /**
   * A MIGRATION_PASS event: pass `n` began (for the bytes-per-pass list).
   * @param {number} n
   */
  pass(n) {
    if (Number.isFinite(n) && n > 0 && n > this.#latest) {
      this.#begin(n, this.#ram.transferred ?? 0, this.#readings);
    }
  }

  /**
   * Pass `n` began at `start` bytes, after `reading` readings. The list keeps the newest
   * MAX_PASSES passes: a migration that never converges makes passes for as long as it runs.
   * @param {number} n
   * @param {number} start
   * @param {number} reading
   */
  #begin(n, start, reading) {
    this.#starts.set(n, { start, reading });
    this.#latest = Math.max(this.#latest, n);
    if (this.#starts.size > MAX_PASSES) this.#starts.delete(this.#starts.keys().next().value);
  }

  /**
   * A MigrationInfo (from `progress` or a query) of the followed migration.
   * @param {{ status?: string, "x-id"?: string, ram?: Record<string, number>,
   *   disk?: DiskCounters, "x-progress"?: Progress }} info
   */
  info(info) {
    if (info["x-id"] !== undefined && info["x-id"] !== this.#id) this.reset(info["x-id"]);
    const disk = info.disk;
    if (disk && typeof disk.total === "number") {
      this.#disk = { transferred: disk.transferred, remaining: disk.remaining, total: disk.total };
    }
    const ram = info.ram;
    if (ram) {
      this.#ram = {
        transferred: ram.transferred,
        remaining: ram.remaining ?? (info.status === "completed" ? 0 : this.#ram.remaining),
        total: ram.total,
      };
      this.#readings++;
      if (this.#starts.size === 0) {
        // The first pass seen began at 0 bytes, before any reading.
        this.#begin(ram["dirty-sync-count"] ?? 0, 0, 0);
      }
      this.pass(ram["dirty-sync-count"]);
    }
    const p = info["x-progress"];
    if (!p || typeof p.percent !== "number") return;
    this.#progress = p;
    this.#value = Math.min(1, Math.max(0, p.percent / 100));
    this.#pass = Math.max(this.#pass, ram?.["dirty-sync-count"] ?? 0);
  }

  /** @returns {ProgressView} */
  view() {
    // Passes that began with no reading between them share one start: one record for the run.
    /** @type {{ pass: number, last?: number, start: number, reading: number }[]} */
    const runs = [];
    for (const [pass, { start, reading }] of [...this.#starts].sort((a, b) => a[0] - b[0])) {
      const prev = runs.at(-1);
      if (prev && prev.reading === reading) prev.last = pass;
      else runs.push({ pass, start, reading });
    }
    const now = this.#ram.transferred ?? 0;
    return {
      id: this.#id,
      pass: this.#pass,
      value: this.#value,
      progress: this.#progress,
      transferred: this.#ram.transferred,
      remaining: this.#ram.remaining,
      total: this.#ram.total,
      disk: this.#disk,
      passes: runs.map((r, i) => ({
        pass: r.pass,
        ...(r.last !== undefined ? { last: r.last } : {}),
        sent: Math.max(0, (runs[i + 1]?.start ?? now) - r.start),
      })),
    };
  }
}

/**
 * What the agent's `x-progress` says about the end, in a few words: the ETA when it gives
 * one, else why there is none.
 * @param {Progress | undefined} p
 * @returns {string}
 */
export function etaText(p) {
  if (!p) return "–";
  const eta = p["eta-ms"];
  if (typeof eta === "number") return `≈ ${formatMs(eta)}`;
  switch (p.state) {
    case "estimating":
      return "estimating";
    case "stalled":
      return "none: stalled";
    case "not-converging":
      return "none: not converging";
    case "switchover":
      return "switching over";
    case "completed":
      return "done";
    default:
      return p.state;
  }
}

/**
 * The disk row of the progress card, e.g. "48 MiB sent of 64 MiB · 16 MiB remaining";
 * "" when the migration moves no disk (the row is then hidden).
 * @param {DiskCounters | undefined} disk
 * @returns {string}
 */
export function diskText(disk) {
  if (!disk) return "";
  return `${formatBytes(disk.transferred)} sent of ${formatBytes(disk.total)} · ` +
    `${formatBytes(disk.remaining)} remaining`;
}

/**
 * An event's time (ISO 8601) as the local wall-clock time with milliseconds.
 * @param {string | number | Date} when
 * @returns {string}
 */
export function formatClock(when) {
  const d = new Date(when);
  if (Number.isNaN(d.getTime())) return "–";
  const two = (/** @type {number} */ n) => String(n).padStart(2, "0");
  const ms = String(d.getMilliseconds()).padStart(3, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${ms}`;
}
