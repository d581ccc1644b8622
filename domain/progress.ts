/**
 * Ferry's `x-progress`: how far an outgoing migration is, when it should end, and whether
 * the guest's pause at switchover would fit `downtime-limit` — one formula that
 * `GET /migrations/current`, the `progress` events, the dashboard and `ctl` all show. Pure.
 *
 * - `percent` is the share of guest RAM not left to send, `(total − remaining) / total`,
 *   rounded down to a tenth: 100 only once the migration completed, never while pages remain.
 * - No ETA and no `fits` until the bandwidth was measured once; the ETA is the convergence
 *   verdict's (converging only) or, in postcopy, what is left at the measured bandwidth.
 * - `expected-downtime` is what is left at the measured bandwidth (QEMU's formula, without
 *   the seed's start value: the seed reports `downtime-limit` itself until it has measured).
 *
 * @module
 */
import type { Convergence } from "./convergence.ts";
import type { MigrationStatus } from "./state_machine.ts";

/** What the progress is computed from (bytes, bytes per second, ms). */
export interface ProgressInput {
  status: MigrationStatus;
  /** Guest RAM. */
  total: number;
  /** RAM left to send (`ram.remaining`). */
  remaining: number;
  /** What sending `remaining` costs on the wire (less with XBZRLE or compression). */
  remainingCost: number;
  /** The measured bandwidth; 0 before the first measurement. */
  bandwidth: number;
  /** `downtime-limit`. */
  downtimeLimit: number;
  /** The `x-convergence` verdict of an active precopy. */
  convergence?: Convergence;
}

/** What the numbers say now: the convergence verdict while active, else the phase. */
export const PROGRESS_STATES = [
  "estimating",
  "converging",
  "stalled",
  "not-converging",
  "switchover",
  "postcopy",
  "cancelling",
  "completed",
] as const;

/** One of {@link PROGRESS_STATES}. */
export type ProgressState = typeof PROGRESS_STATES[number];

/** Whether the pause at switchover would fit `downtime-limit`. */
export const PROGRESS_FITS = ["estimating", "fits", "too-long"] as const;

/** One of {@link PROGRESS_FITS}. */
export type ProgressFits = typeof PROGRESS_FITS[number];

/** Ferry's `x-progress` member. */
export interface Progress {
  /** 0–100, one decimal; 100 only once completed. */
  percent: number;
  /** Bytes of RAM left to send, what `percent` is computed from. */
  remaining: number;
  state: ProgressState;
  /** Estimated ms until completion: converging precopy, or postcopy-active. */
  "eta-ms"?: number;
  /** ms the guest would pause if it switched over now (measured bandwidth only). */
  "expected-downtime"?: number;
  /** setup and active only. */
  fits?: ProgressFits;
}

/** Tenths of a percent of RAM not left to send, below 100 unless `completed`. */
function percentOf(i: ProgressInput): number {
  if (i.status === "completed") return 100;
  if (!(i.total > 0)) return 0;
  const done = Math.floor(((i.total - Math.max(0, i.remaining)) / i.total) * 1000) / 10;
  return Math.min(99.9, Math.max(0, done));
}

/** A whole number of ms, or undefined when the inputs make none (absurd or infinite). */
function ms(value: number): number | undefined {
  const r = Math.round(value);
  return Number.isFinite(r) && r >= 0 ? r : undefined;
}

/** The state of an active precopy: the verdict's, once a bandwidth was measured. */
function activeState(i: ProgressInput): ProgressState {
  if (!(i.bandwidth > 0)) return "estimating";
  return i.convergence?.verdict ?? "estimating";
}

/** Fits only when converging and the expected pause is within the limit. */
function fitsOf(state: ProgressState, expected: number | undefined, limit: number): ProgressFits {
  if (expected === undefined) return "estimating";
  if (expected > limit || state === "stalled" || state === "not-converging") return "too-long";
  return state === "converging" ? "fits" : "estimating";
}

const SWITCHOVER: readonly MigrationStatus[] = ["pre-switchover", "device"];
const POSTCOPY: readonly MigrationStatus[] = [
  "postcopy-active",
  "postcopy-paused",
  "postcopy-recover",
];

/**
 * The progress of an outgoing migration in `i.status`; undefined when there is nothing to
 * report (none, failed, cancelled, colo: no RAM counters).
 */
export function assessProgress(i: ProgressInput): Progress | undefined {
  const percent = percentOf(i);
  const remaining = i.status === "completed" ? 0 : Math.max(0, i.remaining);
  const measured = i.bandwidth > 0;
  const expected = measured ? ms((i.remainingCost / i.bandwidth) * 1000) : undefined;
  if (i.status === "completed") return { percent, remaining, state: "completed" };
  if (i.status === "setup") return { percent, remaining, state: "estimating", fits: "estimating" };
  if (i.status === "cancelling") return { percent, remaining, state: "cancelling" };
  if (SWITCHOVER.includes(i.status)) return { percent, remaining, state: "switchover" };
  if (POSTCOPY.includes(i.status)) {
    const p: Progress = { percent, remaining, state: "postcopy" };
    if (i.status === "postcopy-active" && expected !== undefined) p["eta-ms"] = expected;
    return p;
  }
  if (i.status !== "active") return undefined;
  const state = activeState(i);
  const p: Progress = { percent, remaining, state };
  const eta = i.convergence?.["eta-ms"];
  if (state === "converging" && eta !== undefined) p["eta-ms"] = eta;
  if (expected !== undefined) p["expected-downtime"] = expected;
  p.fits = fitsOf(state, expected, i.downtimeLimit);
  return p;
}
