/**
 * The command buttons: migrate to a URI, cancel, start postcopy, continue from
 * pre-switchover, pause, resume (source) and recover or listen (destination). Each is
 * enabled in the states where QEMU accepts it; whatever the agent answers is shown
 * under the buttons (its `detail` on a refusal).
 *
 * @module
 */
import { api } from "./api.js";

/** Setup-or-active statuses of the seed, plus cancelling: a migration is under way. */
const BUSY = new Set([
  "setup",
  "active",
  "pre-switchover",
  "device",
  "postcopy-active",
  "postcopy-paused",
  "postcopy-recover",
  "cancelling",
]);

/**
 * @typedef {object} View
 * @property {string} status the current MigrationStatus
 * @property {"source" | "destination"} side
 * @property {string | undefined} runstate the guest's runstate
 */

/**
 * Which buttons make sense now (the agent still has the last word).
 * @param {View} v
 * @returns {Record<string, boolean>}
 */
export function enabledActions({ status, side, runstate }) {
  const busy = BUSY.has(status);
  const source = side === "source";
  return {
    start: !busy && runstate !== "inmigrate",
    cancel: busy && source && status !== "cancelling",
    postcopy: source && status === "active",
    continue: source && status === "pre-switchover",
    pause: source && status === "postcopy-active",
    resume: source && status === "postcopy-paused",
    recover: !source && status === "postcopy-paused",
    incoming: runstate === "inmigrate" && (status === "none" || status === "failed"),
  };
}

/** @type {Record<string, [string, string, (uri: string) => unknown]>} */
const COMMANDS = {
  start: ["POST", "migrations", (uri) => ({ uri })],
  cancel: ["POST", "migrations/current/cancel", () => undefined],
  postcopy: ["POST", "migrations/current/postcopy", () => undefined],
  continue: ["POST", "migrations/current/continue", () => ({ state: "pre-switchover" })],
  pause: ["POST", "migrations/current/pause", () => undefined],
  resume: ["POST", "migrations", (uri) => ({ uri, resume: true })],
  recover: ["POST", "migrations/incoming/recover", (uri) => ({ uri })],
  incoming: ["POST", "migrations/incoming", (uri) => ({ uri })],
};

/** Commands that need the URI field. */
const NEEDS_URI = new Set(["start", "resume", "recover", "incoming"]);

/**
 * Wires the buttons (`#btn-<name>`) to their commands.
 * @param {HTMLInputElement} uriInput
 * @param {HTMLElement} result where answers go
 * @param {(line: string) => void} log
 */
export function wireActions(uriInput, result, log) {
  for (const [name, [method, path, body]] of Object.entries(COMMANDS)) {
    const button = document.getElementById(`btn-${name}`);
    button?.addEventListener("click", async () => {
      const uri = uriInput.value.trim();
      if (NEEDS_URI.has(name) && !uri) {
        result.textContent = "Enter a URI first, e.g. tcp:HOST:PORT";
        result.className = "result error";
        uriInput.focus();
        return;
      }
      const payload = body(uri);
      const line = `${method} /${path}${payload ? ` ${JSON.stringify(payload)}` : ""}`;
      result.textContent = `${line} …`;
      result.className = "result";
      try {
        await api(method, path, payload);
        result.textContent = `${line} → accepted`;
        result.className = "result ok";
        log(`${line} → accepted`);
      } catch (e) {
        const detail = e instanceof Error ? e.message : String(e);
        result.textContent = detail;
        result.className = "result error";
        log(`${line} → ${detail}`);
      }
    });
  }
}

/** Commands of an outgoing migration: a guest still arriving has none to give. */
const OUTGOING = new Set(["start", "cancel", "postcopy", "continue", "pause", "resume"]);

/**
 * Which buttons to show: all of them, except while the guest is still arriving
 * (`inmigrate`, a destination), which shows only the incoming side's (its page must not offer to start a
 * migration, least of all to the URI it listens on).
 * @param {View} v
 * @returns {Record<string, boolean>}
 */
export function shownActions({ runstate }) {
  const arriving = runstate === "inmigrate";
  return Object.fromEntries(
    Object.keys(COMMANDS).map((name) => [name, !(arriving && OUTGOING.has(name))]),
  );
}

/**
 * The URI field's placeholder: what the URI is for on this side, never a concrete address
 * (a destination's own incoming URI looked like a prefilled target).
 * @param {View} v
 * @returns {string}
 */
export function uriPlaceholder({ side, runstate }) {
  if (runstate === "inmigrate") {
    return side === "destination"
      ? "URI to listen on (recover), e.g. tcp:0.0.0.0:PORT"
      : "URI to listen on, e.g. tcp:0.0.0.0:PORT";
  }
  return "the destination's URI, e.g. tcp:HOST:PORT";
}

/**
 * Enables, disables and hides the buttons for the current state.
 * @param {View} v
 */
export function updateActions(v) {
  const shown = shownActions(v);
  for (const [name, on] of Object.entries(enabledActions(v))) {
    const button = /** @type {HTMLButtonElement | null} */ (
      document.getElementById(`btn-${name}`)
    );
    if (!button) continue;
    button.disabled = !on;
    button.hidden = !shown[name];
  }
  const uri = /** @type {HTMLInputElement | null} */ (document.getElementById("uri"));
  if (uri) uri.placeholder = uriPlaceholder(v);
}
