/**
 * The convergence verdict: from the measured bandwidth, dirty rate and the RAM left after
 * each dirty-log sync, will this precopy migration finish, and when? Pure.
 *
 * Model: a pass sends what is left (R) at bandwidth B while the guest dirties D bytes per
 * second, so the next pass starts with about R·q, q = D/B (bounded by the guest's working
 * set, which the post-sync history shows). The migration completes once R < B × limit.
 *
 * @module
 */

/** What the verdict is computed from (bytes, bytes per second, ms). */
export interface ConvergenceInput {
  remaining: number;
  bandwidth: number;
  dirtyRate: number;
  downtimeLimit: number;
  /** RAM left right after each of the last syncs, oldest first. */
  afterSync: readonly number[];
  /** max-bandwidth (0 = unlimited). */
  maxBandwidth: number;
  autoConverge: boolean;
  postcopy: boolean;
  throttle: number;
}

/** Ferry's `x-convergence` member. */
export interface Convergence {
  verdict: "estimating" | "converging" | "stalled" | "not-converging";
  /** Estimated ms until completion (converging only). */
  "eta-ms"?: number;
  /** Dirty rate / bandwidth. */
  ratio?: number;
  suggestion?: string;
}

const MiB = 1 << 20;

/**
 * The max-bandwidth (MiB/s) worth asking for: above the dirty rate (with a quarter to
 * spare), enough to send what each pass leaves (`floor`) within downtime-limit, and always
 * above the current limit — naming a value at or below it would ask for nothing.
 */
export function bandwidthNeeded(i: ConvergenceInput, floor: number): number {
  const forDirty = i.dirtyRate * 1.25;
  const forFloor = i.downtimeLimit > 0 ? floor * 1000 / i.downtimeLimit : 0;
  const above = i.maxBandwidth * 1.25;
  const need = Math.ceil(Math.max(forDirty, forFloor, above) / MiB);
  return Math.max(need, Math.floor(i.maxBandwidth / MiB) + 1);
}

function suggest(i: ConvergenceInput, floor: number): string {
  const limited = i.maxBandwidth > 0 && i.bandwidth >= 0.8 * i.maxBandwidth;
  if (limited) return `raise max-bandwidth above ${bandwidthNeeded(i, floor)} MiB/s`;
  if (i.postcopy) return "start postcopy (POST /migrations/current/postcopy)";
  if (!i.autoConverge) return "enable auto-converge (for the next migration) or postcopy-ram";
  if (i.throttle < 99) return "wait: auto-converge is throttling the vCPU";
  return "use postcopy: the guest dirties memory faster than it can be sent";
}

/** The verdict for one moment of a running precopy migration. */
export function assessConvergence(i: ConvergenceInput): Convergence {
  // Three syncs: the dirty rate is measured over at least a second by then.
  if (i.bandwidth <= 0 || i.afterSync.length < 3) return { verdict: "estimating" };
  const threshold = i.bandwidth * i.downtimeLimit / 1000;
  const ratio = i.dirtyRate / i.bandwidth;
  const rounded = Math.round(ratio * 100) / 100;
  const recent = i.afterSync.slice(-3);
  const shrinking = recent.every((r, k) => k === 0 || r < recent[k - 1] * 0.95);
  const floor = Math.min(...recent);
  if (ratio < 1 && (shrinking || floor < threshold)) {
    const R = Math.max(i.remaining, floor);
    const passes = ratio > 0 && R > threshold
      ? Math.ceil(Math.log(threshold / R) / Math.log(ratio))
      : 1;
    const q = Math.min(ratio, 0.999);
    const seconds = (R / i.bandwidth) * (1 - q ** Math.max(passes, 1)) / (1 - q);
    const eta = Math.round(seconds * 1000 + i.downtimeLimit);
    // Absurd inputs (a bandwidth of a few bytes per eon) overflow: no ETA rather than Infinity.
    return Number.isFinite(eta) && eta >= 0
      ? { verdict: "converging", "eta-ms": eta, ratio: rounded }
      : { verdict: "converging", ratio: rounded };
  }
  if (ratio >= 1 && floor >= threshold) {
    return { verdict: "not-converging", ratio: rounded, suggestion: suggest(i, floor) };
  }
  return { verdict: "stalled", ratio: rounded, suggestion: suggest(i, floor) };
}
