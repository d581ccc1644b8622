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
import { coloView, renderColo } from "./colo.js";
import { EventLog } from "./event_log.js";
import { formatBytes, formatCount, formatMbps, formatMs, ProgressTracker } from "./model.js";
import { currentCapabilities, currentParameters, loadOptions } from "./options.js";
import { renderSwitchover } from "./switchover.js";
import { followEvents } from "./sse.js";
import { $, setText } from "./dom.js";
import { renderGuest, renderProgress } from "./panels.js";
import { diagramSvg } from "./state_diagram.js";

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
  /** The last event id received: a new connection resumes after it ("0": the backlog). */
  lastEventId: "0",
  /** @type {import("./colo.js").ColoStatus | null} the last GET /colo */
  colo: null,
  /** @type {Record<string, number> | null} the followed migration's last `x-colo` counters */
  coloCounters: null,
  /** @type {import("./colo.js").ColoExit | null} the COLO_EXIT event since it was followed */
  coloExit: null,
};
const tracker = new ProgressTracker();
const FINISHED = ["completed", "failed", "cancelled"];
const log = new EventLog(/** @type {HTMLTableSectionElement} */ ($("log-body")));
/** @param {string} line */
const logUi = (line) => log.add("", "ui", line);

/**
 * Starts following a new migration (charts, path and bar begin again).
 * @param {string} id
 * @returns {boolean} true when `id` is new
 */
function follow(id) {
  if (state.seen.has(id)) return false;
  state.seen.add(id);
  state.pathId = id;
  state.path = [];
  state.samples = [];
  state.passMarks = [];
  state.lastT = 0;
  state.coloCounters = null;
  state.coloExit = null;
  tracker.reset(id);
  return true;
}

/** @param {Record<string, any>} info a MigrationInfo from a query */
function applyQuery(info) {
  if (info["x-id"] && state.seen.has(info["x-id"])) return;
  state.info = info;
  state.coloCounters = info["x-colo"] ?? null;
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
  state.lastEventId = message.id || state.lastEventId;
  const known = data !== null && typeof data === "object";
  if (!known || !["progress", "MIGRATION", "MIGRATION_PASS", "COLO_EXIT"].includes(message.event)) {
    log.add(message.id, message.event, data);
  } else if (message.event === "progress") {
    if (data["x-id"]) follow(data["x-id"]);
    state.info = data;
    if (data["x-side"]) state.side = data["x-side"];
    tracker.info(data);
    if (data["total-time"] !== undefined) state.lastT = data["total-time"] / 1000;
    const ram = data.ram;
    if (ram && !FINISHED.includes(data.status)) {
      state.samples.push({ t: state.lastT, mbps: ram.mbps, dirty: ram["dirty-pages-rate"] });
      if (state.samples.length > 2400) state.samples = state.samples.filter((_, i) => i % 2);
    }
  } else if (message.event === "COLO_EXIT") {
    log.add(message.id, message.event, data);
    state.coloExit = data;
    machineSoon();
  } else if (message.event === "MIGRATION") {
    log.add(message.id, message.event, data);
    const fresh = data.id ? follow(data.id) : false;
    if (state.path.at(-1) !== data.status) state.path.push(data.status);
    state.info = fresh
      ? { status: data.status, "x-id": data.id, "x-side": data.side }
      : { ...state.info, status: data.status };
    state.side = data.side;
    machineSoon();
    if (FINISHED.includes(data.status)) setTimeout(() => void refreshFinal(data.id), 150);
  } else {
    log.add(message.id, message.event, data);
    tracker.pass(data.pass);
    state.passMarks.push({ t: state.lastT, pass: data.pass });
    // As the samples: a migration that never converges makes passes for as long as it runs.
    if (state.passMarks.length > 4800) state.passMarks = state.passMarks.filter((_, i) => i % 2);
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
  renderProgress(tracker.view(), state.side === "destination" && !info.ram);
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
  renderSwitchover(info, currentParameters(), currentCapabilities(), state.side);
  renderGuest(state.machine, info, state.side);
  renderColo(coloView({
    status: info.status,
    counters: state.coloCounters ?? info["x-colo"],
    colo: state.colo,
    exit: state.coloExit,
    side: state.side,
  }));
  const empty = state.side === "destination"
    ? "The destination reports no rates: the source's page has this chart"
    : "No samples yet: the chart fills while a migration runs";
  drawChart(/** @type {HTMLCanvasElement} */ ($("chart")), state.samples, state.passMarks, empty);
  updateActions({ status: info.status, side: state.side, runstate: state.machine?.runstate });
}

/** True from a 401 until a token works: polling would only ask again. */
let locked = false;
/** @type {number | undefined} */
let machineTimer;

/** Refreshes the guest card soon, once for a burst of state changes (a replay). */
function machineSoon() {
  clearTimeout(machineTimer);
  machineTimer = setTimeout(() => void refreshMachine(), 100);
}

async function refreshMachine() {
  if (locked) return;
  try {
    state.machine = await api("GET", "machine");
    if (!state.info["x-side"] && state.machine?.runstate === "inmigrate") {
      state.side = "destination";
    }
    await refreshColo();
    schedule();
  } catch { /* shown by the connection chip */ }
}

/**
 * COLO's mode, and while in COLO its checkpoint counters: the agent sends no `progress`
 * events in status colo, so the card is kept by queries.
 */
async function refreshColo() {
  state.colo = await api("GET", "colo");
  if (state.info.status !== "colo" && state.colo?.mode === "none") return;
  const info = await api("GET", "migrations/current");
  if (state.pathId === null || info["x-id"] === state.pathId) {
    state.coloCounters = info["x-colo"] ?? state.coloCounters;
  }
}

/**
 * A finished migration's final counters (total-time, downtime, blocktime) come from a
 * query: the event stream's last sample was taken at the transition itself.
 * @param {string} id
 */
async function refreshFinal(id) {
  try {
    const info = await api("GET", "migrations/current");
    if (info["x-id"] !== id || id !== state.pathId) return;
    state.info = info;
    state.coloCounters = info["x-colo"] ?? state.coloCounters;
    tracker.info(info);
    schedule();
  } catch { /* the stream's view stays */ }
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
    lastEventId: state.lastEventId,
    onEvent,
    onState: (s) => {
      const chip = $("conn");
      chip.textContent = s === "live" ? "live" : s;
      chip.dataset.state = s;
      if (s === "unauthorized") {
        locked = true;
        askToken("This agent needs its API token.");
      }
    },
  });
}

/** @param {string} message */
function askToken(message) {
  const dialog = /** @type {HTMLDialogElement} */ ($("token-dialog"));
  setText("token-message", message);
  if (!dialog.open) dialog.showModal();
}

async function start() {
  onUnauthorized((detail) => {
    locked = true;
    askToken(detail);
  });
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
