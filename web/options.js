/**
 * Capabilities and parameters: one row each, edited in place with a JSON merge patch of
 * just that member; the agent's refusal (QEMU's text) appears on the row itself.
 *
 * @module
 */
import { api } from "./api.js";
import { formatBytes, formatMs } from "./model.js";

/**
 * @typedef {{ description?: string, minimum?: number, maximum?: number, type?: string }} Meta
 * @typedef {{ caps: Record<string, Meta>, params: Record<string, Meta> }} OptionMeta
 */

/** @type {OptionMeta} */
let meta = { caps: {}, params: {} };
/** @type {(line: string) => void} */
let log = () => {};
/** @type {Record<string, any>} */
let params = {};
/** @type {Record<string, boolean>} */
let caps = {};

/**
 * What a parameter's value means, in units, next to its field.
 * @param {string} name
 * @param {unknown} value
 * @returns {string}
 */
export function parameterHint(name, value) {
  const n = Number(value);
  if (typeof value === "boolean" || value === "" || !Number.isFinite(n)) return "";
  if (name === "max-bandwidth" || name === "max-postcopy-bandwidth") {
    return n === 0 ? "unlimited" : `${formatBytes(n)}/s`;
  }
  if (name === "xbzrle-cache-size") return formatBytes(n);
  if (name === "downtime-limit" || name === "x-checkpoint-delay") return formatMs(n);
  if (name.startsWith("cpu-throttle") || name === "max-cpu-throttle") return `${n} %`;
  return "";
}

/**
 * @param {string} tag
 * @param {Record<string, string>} [attrs]
 * @param {string} [text]
 * @returns {HTMLElement}
 */
function el(tag, attrs = {}, text) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}

/**
 * Sends `{name: value}` to `path`; shows the outcome in `note`.
 * @param {"capabilities" | "parameters"} path
 * @param {string} name
 * @param {unknown} value
 * @param {HTMLElement} note
 * @returns {Promise<boolean>}
 */
async function patch(path, name, value, note) {
  note.textContent = "…";
  note.className = "note";
  try {
    const map = await api("PATCH", path, { [name]: value });
    if (path === "capabilities") caps = map;
    else params = map;
    note.textContent = "✓ saved";
    note.className = "note ok";
    log(`PATCH /${path} {"${name}": ${JSON.stringify(value)}} → 200`);
    setTimeout(() => {
      if (note.textContent === "✓ saved") note.textContent = "";
    }, 2500);
    return true;
  } catch (e) {
    note.textContent = e instanceof Error ? e.message : String(e);
    note.className = "note error";
    note.setAttribute("role", "alert");
    log(`PATCH /${path} {"${name}": ${JSON.stringify(value)}} → ${note.textContent}`);
    return false;
  }
}

/**
 * Builds the capabilities table.
 * @param {HTMLTableSectionElement} body
 */
function renderCaps(body) {
  body.replaceChildren();
  for (const [name, on] of Object.entries(caps)) {
    const info = meta.caps[name]?.description ?? "";
    const unavailable = /Not available/.test(info);
    const row = el("tr", { class: unavailable ? "unavailable" : "" });
    const box = /** @type {HTMLInputElement} */ (el("input", {
      type: "checkbox",
      id: `cap-${name}`,
      "data-capability": name,
    }));
    box.checked = on;
    const label = el("label", { for: `cap-${name}`, title: info }, name);
    const note = el("span", { class: "note", id: `cap-${name}-note` });
    if (unavailable) label.append(el("small", { class: "tag" }, "n/a"));
    box.addEventListener("change", async () => {
      if (!(await patch("capabilities", name, box.checked, note))) box.checked = caps[name];
    });
    const cell = el("td");
    cell.append(box, label);
    row.append(cell, el("td", {}, ""));
    row.lastElementChild?.append(note);
    body.append(row);
  }
}

/**
 * Builds the parameters table.
 * @param {HTMLTableSectionElement} body
 */
function renderParams(body) {
  body.replaceChildren();
  for (const [name, value] of Object.entries(params)) {
    const m = meta.params[name] ?? {};
    const range = m.minimum !== undefined ? ` (${m.minimum} … ${m.maximum})` : "";
    const row = el("tr");
    const label = el(
      "label",
      { for: `param-${name}`, title: `${m.description ?? ""}${range}` },
      name,
    );
    const input = /** @type {HTMLInputElement} */ (el("input", {
      id: `param-${name}`,
      "data-parameter": name,
      type: typeof value === "boolean" ? "checkbox" : "text",
      inputmode: typeof value === "number" ? "numeric" : "text",
      spellcheck: "false",
    }));
    const hint = el("span", { class: "hint" }, parameterHint(name, value));
    const note = el("span", { class: "note", id: `param-${name}-note` });
    if (typeof value === "boolean") input.checked = value;
    else input.value = String(value);
    const read = () => {
      if (typeof value === "boolean") return input.checked;
      if (typeof value === "number") return input.value.trim() === "" ? NaN : Number(input.value);
      return input.value;
    };
    const commit = async () => {
      const v = read();
      if (v === params[name]) return;
      if (typeof v === "number" && !Number.isFinite(v)) {
        note.textContent = `${name} must be a number`;
        note.className = "note error";
        return;
      }
      if (await patch("parameters", name, v, note)) {
        input.classList.remove("invalid");
        hint.textContent = parameterHint(name, params[name]);
      } else input.classList.add("invalid");
    };
    input.addEventListener("input", () => (hint.textContent = parameterHint(name, read())));
    // `change` fires on Enter and when the field loses focus with a new value.
    input.addEventListener("change", commit);
    input.addEventListener("keydown", (e) => {
      if (e.key === "Escape") {
        input.value = String(params[name]);
        hint.textContent = parameterHint(name, params[name]);
        input.classList.remove("invalid");
        note.textContent = "";
      }
    });
    const field = el("td", { class: "field" });
    field.append(input, hint);
    const labelCell = el("td");
    labelCell.append(label);
    const noteCell = el("td");
    noteCell.append(note);
    row.append(labelCell, field, noteCell);
    body.append(row);
  }
}

/**
 * Loads both maps (and, once, their descriptions from the agent's OpenAPI document)
 * and draws the tables.
 * @param {HTMLTableSectionElement} capsBody
 * @param {HTMLTableSectionElement} paramsBody
 * @param {(line: string) => void} logLine
 */
export async function loadOptions(capsBody, paramsBody, logLine) {
  log = logLine;
  if (Object.keys(meta.caps).length === 0) {
    try {
      const doc = await api("GET", "openapi.json");
      meta = {
        caps: doc.components.schemas.MigrationCapabilities.properties,
        params: doc.components.schemas.MigrationParameters.properties,
      };
    } catch { /* descriptions are a nicety */ }
  }
  [caps, params] = await Promise.all([api("GET", "capabilities"), api("GET", "parameters")]);
  renderCaps(capsBody);
  renderParams(paramsBody);
}

/** @returns {Record<string, any>} the last parameters read or written */
export function currentParameters() {
  return params;
}

/** @returns {Record<string, boolean>} the last capabilities read or written */
export function currentCapabilities() {
  return caps;
}
