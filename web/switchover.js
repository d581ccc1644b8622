/**
 * The switchover card: the agent's `x-progress` (state, ETA, whether the pause fits) with
 * `x-convergence`'s suggestion, expected and actual downtime against `downtime-limit`, and
 * the auto-converge throttle against `max-cpu-throttle`. Nothing here is computed: the
 * agent's one formula (domain/progress.ts) says it.
 *
 * @module
 */
import { $, setText } from "./dom.js";
import { formatMs } from "./model.js";

/**
 * Where a value sits on a gauge whose scale leaves room for the limit and the value.
 * @param {number} value
 * @param {number} limit
 * @returns {{ fill: number, mark: number }} percentages of the gauge's width
 */
export function gaugeScale(value, limit) {
  const top = Math.max(limit * 1.5, value * 1.1, 1);
  return { fill: (100 * Math.max(0, value)) / top, mark: (100 * limit) / top };
}

/**
 * @param {string} prefix element ids `${prefix}-fill` and `${prefix}-mark`
 * @param {number} value
 * @param {number} limit
 * @param {boolean} over
 */
function gauge(prefix, value, limit, over) {
  const { fill, mark } = gaugeScale(value, limit);
  const f = $(`${prefix}-fill`);
  f.style.width = `${fill}%`;
  f.classList.toggle("over", over);
  $(`${prefix}-mark`).style.left = `${mark}%`;
}

/**
 * @param {any} suggestion
 * @returns {string}
 */
function suggestionText(suggestion) {
  if (suggestion === undefined || suggestion === null || suggestion === "") return "";
  if (typeof suggestion === "string") return suggestion;
  return JSON.stringify(suggestion);
}

/** The badge's colour for an `x-progress` state. */
const TONES = /** @type {Record<string, string>} */ ({
  converging: "good",
  completed: "good",
  stalled: "warn",
  cancelling: "warn",
  "not-converging": "bad",
});

/**
 * @typedef {object} Summary
 * @property {string} [badge] the `x-progress` state, when the agent sent one
 * @property {string} tone
 * @property {string} line the ETA, or why there is none
 * @property {string} note what to say instead of a badge
 */

/**
 * The card's headline, from the agent's `x-progress` (and `x-convergence`'s wording for
 * what is missing); without one, what the status means for a switchover.
 * @param {Record<string, any>} info
 * @param {"source" | "destination"} side
 * @returns {Summary}
 */
export function switchoverSummary(info, side) {
  /** @type {import("./model.js").Progress | undefined} */
  const p = info["x-progress"];
  if (side === "destination") {
    return {
      tone: "neutral",
      line: "",
      note: info.status === "completed"
        ? "Switched over: the guest runs here now. The source's page has the verdict it had."
        : "The destination reports its status only: the source's page has the verdict.",
    };
  }
  if (!p) {
    const notes = /** @type {Record<string, string>} */ ({
      none: "No migration yet: the verdict appears once one is active.",
      failed: "The migration failed: the guest runs on here.",
      cancelled: "The migration was cancelled: the guest runs on here.",
    });
    return {
      tone: "neutral",
      line: "",
      note: notes[info.status] ?? `No verdict in status ${info.status}.`,
    };
  }
  const eta = p["eta-ms"];
  const passes = info.ram?.["dirty-sync-count"];
  /** @type {Record<string, string>} */
  const lines = {
    estimating: "estimating: no ETA until a bandwidth and three passes are measured",
    stalled: "no ETA: what each pass leaves does not shrink",
    "not-converging": "no ETA: the guest dirties memory faster than it is sent",
    switchover: "switching over",
    cancelling: "cancelling",
    completed: `switched over${passes ? ` after ${passes} passes` : ""}` +
      `${info.downtime !== undefined ? `, guest paused ${formatMs(info.downtime)}` : ""}`,
    postcopy: "postcopy: the guest runs on the destination",
  };
  const line = typeof eta === "number"
    ? `${p.state === "postcopy" ? "the rest arrives in" : "switchover in"} ≈ ${formatMs(eta)}`
    : lines[p.state] ?? "";
  return { badge: p.state, tone: TONES[p.state] ?? "neutral", line, note: "" };
}

/**
 * The downtime line: the measured pause once switched over, else the agent's `fits`.
 * @param {import("./model.js").Progress | undefined} p
 * @param {number | undefined} actual the measured downtime
 * @param {number} limit
 * @returns {{ text: string, fits: string }}
 */
export function downtimeVerdict(p, actual, limit) {
  if (actual !== undefined) {
    return actual <= limit
      ? { text: "guest paused within the limit", fits: "done" }
      : { text: "guest paused longer than the limit", fits: "done" };
  }
  switch (p?.fits) {
    case "fits":
      return { text: "fits: can switch over", fits: "fits" };
    case "too-long":
      return { text: "too long: keeps iterating", fits: "too-long" };
    case "estimating":
      return p["expected-downtime"] === undefined
        ? { text: "estimating: no bandwidth measured yet", fits: "estimating" }
        : { text: "estimating: no convergence verdict yet", fits: "estimating" };
    default:
      return { text: "no estimate until a migration is active", fits: "" };
  }
}

/**
 * Updates the card from a MigrationInfo and the current options.
 * @param {Record<string, any>} info
 * @param {Record<string, any>} params
 * @param {Record<string, boolean>} caps
 * @param {"source" | "destination"} side
 */
export function renderSwitchover(info, params, caps, side) {
  const summary = switchoverSummary(info, side);
  const badge = $("verdict");
  $("convergence").hidden = summary.badge === undefined;
  $("switchover-note").hidden = summary.badge !== undefined;
  setText("switchover-note", summary.note);
  setText("verdict", summary.badge ?? "");
  badge.dataset.tone = summary.tone;
  setText("eta", summary.line);
  setText("suggestion", suggestionText(info["x-convergence"]?.suggestion));

  /** @type {import("./model.js").Progress | undefined} */
  const p = info["x-progress"];
  const limit = Number(params["downtime-limit"] ?? 300);
  const expected = p?.["expected-downtime"];
  const actual = info.downtime;
  const shown = actual ?? expected;
  setText("downtime-limit", formatMs(limit));
  setText(
    "expected-downtime",
    expected === undefined && p?.fits === "estimating" ? "estimating" : formatMs(expected),
  );
  setText("actual-downtime", formatMs(actual));
  const verdict = side === "destination"
    ? { text: "the source measures the pause: see its page", fits: "" }
    : downtimeVerdict(p, actual, limit);
  setText("downtime-verdict", verdict.text);
  $("downtime-verdict").dataset.fits = verdict.fits;
  gauge("downtime", shown ?? 0, limit, shown !== undefined && shown > limit);

  const throttle = Number(info["cpu-throttle-percentage"] ?? 0);
  const max = Number(params["max-cpu-throttle"] ?? 99);
  setText("throttle", `${throttle} %`);
  setText("throttle-max", `${max} %`);
  setText("throttle-note", caps["auto-converge"] ? "auto-converge on" : "auto-converge off");
  const t = $("throttle-fill");
  t.style.width = `${throttle}%`;
  $("throttle-mark").style.left = `${max}%`;
}
