/**
 * Ferry's dashboard: follows the agent's `/events` (replaying its backlog first) and
 * shows the status on the state diagram, a per-pass progress bar, throughput and dirty
 * rate over time, downtime against `downtime-limit`, the throttle, the event log, and
 * the options; the buttons drive the migration. Plain ES modules, no build step.
 *
 * @module
 */
import { updateActions, wireActions } from "./actions.js";
import { api, onUnauthorized, storedToken, storeToken } from "./api.js";
import { drawChart } from "./chart.js";
import { EventLog } from "./event_log.js";
import { formatBytes, formatCount, formatMbps, formatMs, ProgressTracker } from "./model.js";
import { currentCapabilities, currentParameters, loadOptions } from "./options.js";
import { renderSwitchover } from "./switchover.js";
import { followEvents } from "./sse.js";
import { diagramSvg } from "./state_diagram.js";

/**
 * @param {string} id
 * @returns {HTMLElement}
 */
const $ = (id) => /** @type {HTMLElement} */ (document.getElementById(id));

const state = {
  /** @type {Record<string, any>} */
  info: { status: "none" },
  /** @type {"source" | "destination"} */
  side: "source",
  /** @type {Record<string, any> | null} */
  machine: null,
  /** Statuses the followed migration went through (from MIGRATION events). */
  /** @type {string[]} */
  path: [],
  /** @type {string | null} */
  pathId: null,
  /** Migration ids that events have told about: their events, not queries, are the truth. */
  seen: new Set(),
  /** @type {import("./chart.js").Sample[]} */
  samples: [],
  /** @type {import("./chart.js").PassMark[]} */
  passMarks: [],
  lastT: 0,
  diagramKey: "",
};
const tracker = new ProgressTracker();
const log = new EventLog(/** @type {HTMLTableSectionElement} */ ($("log-body")));
/** @param {string} line */
const logUi = (line) => log.add("", "ui", line);

/**
 * Starts following a new migration (charts, path and bar begin again).
 * @param {string} id
 */
function follow(id) {
  if (state.seen.has(id)) return;
  state.seen.add(id);
  state.pathId = id;
  state.path = [];
  state.samples = [];
  state.passMarks = [];
  state.lastT = 0;
  tracker.reset(id);
}

/** @param {Record<string, any>} info a MigrationInfo from a query */
function applyQuery(info) {
  if (info["x-id"] && state.seen.has(info["x-id"])) return;
  state.info = info;
  if (info["x-side"]) state.side = info["x-side"];
  tracker.info(info);
}

/** @param {import("./sse.js").SseMessage} message */
function onEvent(message) {
  /** @type {any} */
  let data = message.data;
  try {
    data = JSON.parse(message.data);
  } catch { /* not JSON: log the text */ }
  if (message.event === "progress") {
    if (data["x-id"]) follow(data["x-id"]);
    state.info = data;
    if (data["x-side"]) state.side = data["x-side"];
    tracker.info(data);
    if (data["total-time"] !== undefined) state.lastT = data["total-time"] / 1000;
    const ram = data.ram;
    if (ram && !["completed", "failed", "cancelled"].includes(data.status)) {
      state.samples.push({ t: state.lastT, mbps: ram.mbps, dirty: ram["dirty-pages-rate"] });
      if (state.samples.length > 2400) state.samples = state.samples.filter((_, i) => i % 2);
    }
  } else {
    log.add(message.id, message.event, data);
    if (message.event === "MIGRATION") {
      if (data.id) follow(data.id);
      if (state.path.at(-1) !== data.status) state.path.push(data.status);
      state.info = { ...state.info, status: data.status };
      state.side = data.side;
      void refreshMachine();
    } else if (message.event === "MIGRATION_PASS") {
      tracker.pass(data.pass);
      state.passMarks.push({ t: state.lastT, pass: data.pass });
    }
  }
  schedule();
}

let pending = false;
function schedule() {
  if (pending) return;
  pending = true;
  requestAnimationFrame(() => {
    pending = false;
    render();
  });
}

/**
 * @param {string} id
 * @param {string} text
 */
function setText(id, text) {
  const e = $(id);
  if (e.textContent !== text) e.textContent = text;
}

function renderProgress() {
  const p = tracker.view();
  const pct = Math.round(p.value * 1000) / 10;
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.dataset.pass = String(p.pass);
  $("progress-fill").style.width = `${pct}%`;
  setText("progress-pct", `${pct.toFixed(1)} %`);
  setText("pass-label", p.pass > 0 ? `pass ${p.pass}` : "before the first pass");
  setText("remaining", p.remaining === undefined ? "–" : formatBytes(p.remaining));
  setText("transferred", formatBytes(p.transferred));
  setText("total", formatBytes(p.total));
  // The first pass and the latest ones; the count says how many lie between.
  const shown = p.passes.length > 8 ? [p.passes[0], null, ...p.passes.slice(-6)] : p.passes;
  $("passes").replaceChildren(...shown.map((x) => {
    const li = document.createElement("li");
    if (!x) {
      li.textContent = `… ${p.passes.length - 7} more`;
      li.className = "gap";
      return li;
    }
    li.textContent = `pass ${x.pass}: ${formatBytes(x.sent)}`;
    if (x.pass === p.pass) li.className = "current";
    return li;
  }));
}

function render() {
  const info = state.info;
  const ram = info.ram ?? {};
  const status = $("status");
  setText("status", info.status);
  status.dataset.status = info.status;
  setText("side", state.side === "destination" ? "destination (incoming)" : "source (outgoing)");
  setText("migration-id", info["x-id"] ?? "–");
  setText("total-time", formatMs(info["total-time"]));
  setText("setup-time", formatMs(info["setup-time"]));
  setText("error-desc", info["error-desc"] ?? "–");
  $("error-row").hidden = !info["error-desc"];
  const path = state.path.length > 0 ? state.path : [info.status];
  const key = `${info.status}|${path.join(",")}|${state.side}`;
  if (key !== state.diagramKey) {
    state.diagramKey = key;
    $("diagram").innerHTML = diagramSvg({ current: info.status, path, side: state.side });
  }
  renderProgress();
  setText("mbps", formatMbps(ram.mbps));
  setText(
    "dirty-rate",
    ram["dirty-pages-rate"] === undefined ? "–" : `${formatCount(ram["dirty-pages-rate"])} pages/s`,
  );
  setText(
    "normal",
    ram.normal === undefined
      ? "–"
      : `${formatCount(ram.normal)} (${formatBytes(ram["normal-bytes"])})`,
  );
  setText("duplicate", formatCount(ram.duplicate));
  setText("postcopy-requests", formatCount(ram["postcopy-requests"]));
  renderSwitchover(info, currentParameters(), currentCapabilities());
  renderGuest();
  drawChart(/** @type {HTMLCanvasElement} */ ($("chart")), state.samples, state.passMarks);
  updateActions({ status: info.status, side: state.side, runstate: state.machine?.runstate });
}

function renderGuest() {
  const m = state.machine;
  const info = state.info;
  setText("runstate", m ? `runstate ${m.runstate}` : "runstate –");
  setText("guest-runstate", m?.runstate ?? "–");
  setText("guest-ram", m ? formatBytes(m["ram-size"]) : "–");
  const w = m?.workload;
  setText("guest-workload", w ? `${w.workload}${w.booted ? "" : " (not booted)"}` : "–");
  setText("guest-pages", w ? formatCount(w["pages-written"]) : "–");
  setText("incoming-status", state.side === "destination" ? info.status : "– (not a destination)");
  const blocktime = info["postcopy-blocktime"];
  setText("blocktime", blocktime === undefined ? "–" : formatMs(blocktime));
  const vcpu = info["postcopy-vcpu-blocktime"];
  setText("vcpu-blocktime", Array.isArray(vcpu) ? vcpu.map((x) => formatMs(x)).join(", ") : "–");
}

/** True from a 401 until a token works: polling would only ask again. */
let locked = false;

async function refreshMachine() {
  if (locked) return;
  try {
    state.machine = await api("GET", "machine");
    if (!state.info["x-side"] && state.machine?.runstate === "inmigrate") {
      state.side = "destination";
    }
    schedule();
  } catch { /* shown by the connection chip */ }
}

async function refreshAll() {
  applyQuery(await api("GET", "migrations/current"));
  await refreshMachine();
  await loadOptions(
    /** @type {HTMLTableSectionElement} */ ($("caps-body")),
    /** @type {HTMLTableSectionElement} */ ($("params-body")),
    logUi,
  );
  schedule();
}

/** @type {(() => void) | null} */
let stopEvents = null;

function connect() {
  stopEvents?.();
  stopEvents = followEvents("events", {
    token: storedToken,
    lastEventId: "0",
    onEvent,
    onState: (s) => {
      const chip = $("conn");
      chip.textContent = s === "live" ? "live" : s;
      chip.dataset.state = s;
      if (s === "unauthorized") askToken("This agent needs its API token.");
    },
  });
}

/** @param {string} message */
function askToken(message) {
  locked = true;
  const dialog = /** @type {HTMLDialogElement} */ ($("token-dialog"));
  setText("token-message", message);
  if (!dialog.open) dialog.showModal();
}

async function start() {
  onUnauthorized((detail) => askToken(detail));
  wireActions(/** @type {HTMLInputElement} */ ($("uri")), $("action-result"), logUi);
  setText("agent", location.host);
  $("token-btn").addEventListener("click", () => askToken("Paste the agent's --api-token."));
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    storeToken(/** @type {HTMLInputElement} */ ($("token-input")).value.trim());
    /** @type {HTMLDialogElement} */ ($("token-dialog")).close();
    void boot();
  });
  addEventListener("resize", schedule);
  setInterval(() => void refreshMachine(), 2000);
  await boot();
}

async function boot() {
  locked = false;
  try {
    await refreshAll();
  } catch (e) {
    setText("action-result", e instanceof Error ? e.message : String(e));
    return;
  }
  connect();
}

void start();
