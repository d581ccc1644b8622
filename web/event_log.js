/**
 * The event log: every event from `/events` except the 250 ms `progress` samples (they
 * feed the chart and the bar), whatever its name — MIGRATION_POLICY and escalation
 * events included — plus what the user did from this page. Newest first, bounded. Each
 * row shows the event's own time (the agent's `time`), not when the page received it.
 *
 * @module
 */

import { formatClock, formatMs } from "./model.js";

const LIMIT = 400;

/**
 * A MIGRATION_CONVERGENCE event in words: the verdict, the ETA or the suggestion.
 * @param {Record<string, any>} d
 * @returns {string}
 */
function convergenceLine(d) {
  const parts = [`verdict ${d.verdict}`];
  if (typeof d.ratio === "number") parts.push(`dirty rate ${d.ratio}× bandwidth`);
  if (typeof d["eta-ms"] === "number") parts.push(`switchover in ≈ ${formatMs(d["eta-ms"])}`);
  if (d.suggestion) parts.push(`suggestion: ${d.suggestion}`);
  return parts.join(" · ");
}

/**
 * A MIGRATION_POLICY event in words: which timeout fired and what was done.
 * @param {Record<string, any>} d
 * @returns {string}
 */
function policyLine(d) {
  if (typeof d.note === "string" && d.note) return d.note;
  return `policy: ${d.trigger ?? "a timeout"} fired${d.step ? ` (step ${d.step})` : ""}` +
    `${d.action ? `: ${d.action}` : ""}`;
}

/**
 * One line describing an event's data (its `time` is shown in its own column).
 * @param {string} event
 * @param {any} data
 * @returns {string}
 */
export function describeEvent(event, data) {
  const object = data !== null && typeof data === "object" && !Array.isArray(data);
  if (event === "MIGRATION" && object) {
    return `${data.side ?? "?"} → ${data.status}${data.id ? `  (${data.id})` : ""}`;
  }
  if (event === "MIGRATION_PASS" && object) return `dirty-log sync: pass ${data.pass}`;
  if (event === "MIGRATION_CONVERGENCE" && object && data.verdict) return convergenceLine(data);
  if (event === "MIGRATION_POLICY" && object) return policyLine(data);
  let rest = data;
  if (object && "time" in data) {
    const { time: _time, ...others } = data;
    rest = others;
  }
  const text = typeof rest === "string" ? rest : JSON.stringify(rest);
  return text.length > 300 ? `${text.slice(0, 297)}…` : text;
}

/**
 * When an event happened: its own `time` (the agent's, so a replayed event keeps it), or
 * now for what the page itself logs and for an agent that sends none.
 * @param {any} data
 * @returns {{ iso: string, source: "agent" | "page" }}
 */
export function eventTime(data) {
  const t = data !== null && typeof data === "object" ? data.time : undefined;
  if (typeof t === "string" && !Number.isNaN(Date.parse(t))) return { iso: t, source: "agent" };
  return { iso: new Date().toISOString(), source: "page" };
}

/**
 * The row's tone: state changes, passes, policy or escalation, local actions, other.
 * @param {string} event
 * @param {any} data
 * @returns {string}
 */
export function eventTone(event, data) {
  if (event === "MIGRATION") {
    const s = data?.status;
    if (s === "failed") return "bad";
    if (s === "completed") return "good";
    if (s === "cancelled" || s === "cancelling" || s === "postcopy-paused") return "warn";
    return "state";
  }
  if (event === "MIGRATION_PASS") return "pass";
  if (/POLICY|ESCALAT/i.test(event)) return "policy";
  if (event === "ui") return "ui";
  return "other";
}

/** Appends events to a table body, newest on top. */
export class EventLog {
  /** @param {HTMLTableSectionElement} body */
  constructor(body) {
    this.body = body;
    this.count = 0;
  }

  /**
   * @param {string} id the SSE id ("" for local lines)
   * @param {string} event
   * @param {unknown} data
   */
  add(id, event, data) {
    const row = document.createElement("tr");
    row.className = `tone-${eventTone(event, data)}`;
    row.dataset.event = event;
    const when = eventTime(data);
    for (const text of [id, "", event, describeEvent(event, data)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    const time = document.createElement("time");
    time.dateTime = when.iso;
    time.dataset.source = when.source;
    time.title = when.source === "agent" ? `${when.iso} (the agent's)` : `${when.iso} (received)`;
    time.textContent = formatClock(when.iso);
    row.cells[1].append(time);
    this.body.prepend(row);
    this.count++;
    while (this.body.rows.length > LIMIT) this.body.lastElementChild?.remove();
  }
}
