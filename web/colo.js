/**
 * The COLO card (issue 21): the agent's mode from `GET /colo` (mode, last mode, why COLO was
 * left), the checkpoint counters of the migration's `x-colo` member (periodic / triggered,
 * the primary's pause per checkpoint, bytes per checkpoint, output records compared / held /
 * mismatched) and the COLO_EXIT event once it came. Shown while the status is `colo` and
 * after COLO ended; hidden for a migration that never entered it. Nothing is computed here
 * but the average bytes per checkpoint: the agent's counters say the rest.
 *
 * @module
 */
import { $, setText } from "./dom.js";
import { formatBytes, formatClock, formatCount } from "./model.js";

/**
 * `GET /colo`: QEMU's COLOStatus.
 * @typedef {object} ColoStatus
 * @property {"primary" | "secondary" | "none"} mode
 * @property {"primary" | "secondary" | "none"} last-mode
 * @property {"none" | "request" | "error" | "processing"} reason
 */

/**
 * The COLO_EXIT event's data.
 * @typedef {object} ColoExit
 * @property {"primary" | "secondary"} mode
 * @property {"request" | "error"} reason
 * @property {string} [time]
 */

/**
 * What the card shows, line by line.
 * @typedef {object} ColoView
 * @property {boolean} shown
 * @property {string} mode e.g. "primary", or "none (was secondary)"
 * @property {string} reason why COLO was left, in a few words
 * @property {string} tone the mode badge's colour: good in COLO, warn while held, bad on error
 * @property {string} checkpoints e.g. "12: 10 periodic / 2 triggered"
 * @property {string} pause e.g. "last 3.21 ms · p50 2.9 ms · p99 8.4 ms"
 * @property {string} bytes e.g. "last 1.2 MiB · average 1.1 MiB · 13 MiB in all"
 * @property {string} records e.g. "1204 compared · 3 held · 1 mismatched"
 * @property {string} exit e.g. "12:00:01.250 primary left COLO: error", "" before any
 */

/** What each COLOExitReason means, as the card says it. */
const REASONS = /** @type {Record<string, string>} */ ({
  none: "none",
  request: "request: lost-heartbeat, or the peer's announced exit",
  error: "error: the peer died or the link broke",
  processing: "processing: the link went silent; output held until lost-heartbeat",
});

/**
 * A pause in ms with up to three significant digits (a checkpoint's pause is often below
 * one millisecond, which whole milliseconds would show as 0).
 * @param {number | undefined} ms
 * @returns {string}
 */
export function formatPause(ms) {
  if (ms === undefined || !Number.isFinite(ms)) return "–";
  if (ms >= 100) return `${Math.round(ms)} ms`;
  const text = ms.toFixed(ms >= 10 ? 1 : 2).replace(/\.?0+$/, "");
  return `${text} ms`;
}

/**
 * The card's lines from the followed migration's status, its `x-colo` counters, the last
 * `GET /colo` and the last COLO_EXIT event (each possibly missing).
 * On the secondary (the incoming side) only the checkpoints applied are counted: how each
 * started, the pause and the output compare are the primary's, and the card says so.
 * @param {{ status?: string, counters?: Record<string, number> | null,
 *   colo?: ColoStatus | null, exit?: ColoExit | null,
 *   side?: "source" | "destination" }} input
 * @returns {ColoView}
 */
export function coloView({ status, counters, colo, exit, side }) {
  const c = counters ?? undefined;
  const shown = status === "colo" || c !== undefined || !!exit ||
    (!!colo && (colo.mode !== "none" || colo["last-mode"] !== "none"));
  const mode = !colo
    ? "–"
    : colo.mode !== "none"
    ? colo.mode
    : colo["last-mode"] !== "none"
    ? `none (was ${colo["last-mode"]})`
    : "none";
  const reason = colo ? REASONS[colo.reason] ?? colo.reason : "–";
  const tone = !colo
    ? "neutral"
    : colo.reason === "error"
    ? "bad"
    : colo.reason === "processing"
    ? "warn"
    : colo.mode !== "none"
    ? "good"
    : "neutral";
  const n = c?.checkpoints;
  const bytes = c === undefined || !n ? "–" : `last ${formatBytes(c["checkpoint-bytes-last"])} · ` +
    `average ${formatBytes(c["checkpoint-bytes-total"] / n)} · ` +
    `${formatBytes(c["checkpoint-bytes-total"])} in all`;
  const view = { shown, mode, reason, tone, bytes, exit: exitText(exit) };
  if (side === "destination") {
    const primary = c === undefined ? "–" : "the primary's page has it";
    const checkpoints = c === undefined ? "–" : `${formatCount(n)} applied`;
    return { ...view, checkpoints, pause: primary, records: primary };
  }
  const checkpoints = c === undefined ? "–" : `${formatCount(n)}: ` +
    `${formatCount(c["checkpoints-periodic"])} periodic / ` +
    `${formatCount(c["checkpoints-triggered"])} triggered`;
  const pause = c === undefined || !n ? "–" : `last ${formatPause(c["pause-last-ms"])} · ` +
    `p50 ${formatPause(c["pause-p50-ms"])} · p99 ${formatPause(c["pause-p99-ms"])}`;
  const records = c === undefined ? "–" : `${formatCount(c["records-compared"])} compared · ` +
    `${formatCount(c["records-held"])} held · ${formatCount(c["records-mismatched"])} mismatched`;
  return { ...view, checkpoints, pause, records };
}

/**
 * The COLO_EXIT line, e.g. "12:00:01.250 primary left COLO: error"; "" before any.
 * @param {ColoExit | null | undefined} exit
 * @returns {string}
 */
function exitText(exit) {
  if (!exit) return "";
  return `${exit.time ? `${formatClock(exit.time)} ` : ""}${exit.mode} left COLO: ${exit.reason}`;
}

/**
 * Draws the card.
 * @param {ColoView} v
 */
export function renderColo(v) {
  $("colo-card").hidden = !v.shown;
  if (!v.shown) return;
  setText("colo-mode", v.mode);
  $("colo-mode").dataset.tone = v.tone;
  setText("colo-reason", v.reason);
  setText("colo-checkpoints", v.checkpoints);
  setText("colo-pause", v.pause);
  setText("colo-bytes", v.bytes);
  setText("colo-records", v.records);
  $("colo-exit-row").hidden = v.exit === "";
  setText("colo-exit", v.exit);
}
