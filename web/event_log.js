/**
 * The event log: every event from `/events` except the 250 ms `progress` samples (they
 * feed the chart and the bar), whatever its name — MIGRATION_POLICY and escalation
 * events included — plus what the user did from this page. Newest first, bounded.
 *
 * @module
 */

const LIMIT = 400;

/**
 * One line describing an event's data.
 * @param {string} event
 * @param {any} data
 * @returns {string}
 */
export function describeEvent(event, data) {
  if (event === "MIGRATION" && data && typeof data === "object") {
    return `${data.side ?? "?"} → ${data.status}${data.id ? `  (${data.id})` : ""}`;
  }
  if (event === "MIGRATION_PASS" && data && typeof data === "object") {
    return `dirty-log sync: pass ${data.pass}`;
  }
  const text = typeof data === "string" ? data : JSON.stringify(data);
  return text.length > 300 ? `${text.slice(0, 297)}…` : text;
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
    const time = new Date().toLocaleTimeString(undefined, { hour12: false });
    for (const text of [id, time, event, describeEvent(event, data)]) {
      const cell = document.createElement("td");
      cell.textContent = text;
      row.append(cell);
    }
    this.body.prepend(row);
    this.count++;
    while (this.body.rows.length > LIMIT) this.body.lastElementChild?.remove();
  }
}
