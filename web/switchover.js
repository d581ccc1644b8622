/**
 * The switchover card: the convergence verdict (`x-convergence`, when the agent sends
 * one), expected and actual downtime against `downtime-limit`, and the auto-converge
 * throttle against `max-cpu-throttle`.
 *
 * @module
 */
import { $, setText } from "./dom.js";
import { formatMs, verdictTone } from "./model.js";

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

/**
 * Updates the card from a MigrationInfo and the current options.
 * @param {Record<string, any>} info
 * @param {Record<string, any>} params
 * @param {Record<string, boolean>} caps
 */
export function renderSwitchover(info, params, caps) {
  const conv = info["x-convergence"];
  const badge = $("verdict");
  $("convergence").hidden = !conv;
  $("no-convergence").hidden = !!conv;
  if (conv) {
    setText("verdict", String(conv.verdict ?? "unknown"));
    badge.dataset.tone = verdictTone(conv.verdict);
    const eta = conv["eta-ms"];
    setText("eta", typeof eta === "number" ? `switchover in ≈ ${formatMs(eta)}` : "no ETA");
    setText("suggestion", suggestionText(conv.suggestion));
  }

  const limit = Number(params["downtime-limit"] ?? 300);
  const expected = info["expected-downtime"];
  const actual = info.downtime;
  const shown = actual ?? expected;
  setText("downtime-limit", formatMs(limit));
  setText("expected-downtime", formatMs(expected));
  setText("actual-downtime", formatMs(actual));
  setText(
    "downtime-verdict",
    shown === undefined
      ? "no estimate until a migration is active"
      : actual !== undefined
      ? (actual <= limit ? "guest paused within the limit" : "guest paused longer than the limit")
      : (expected <= limit ? "fits: can switch over" : "too long: keeps iterating"),
  );
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
