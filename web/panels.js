/**
 * The progress card (bar, pass, remaining, bytes per pass) and the guest card (runstate,
 * workload, the incoming side's status and postcopy blocktime).
 *
 * @module
 */
import { $, setText } from "./dom.js";
import {
  diskText,
  etaText,
  formatBytes,
  formatCount,
  formatMs,
  formatRamBacking,
} from "./model.js";

/**
 * Draws the progress card: the agent's `x-progress` (percent, ETA) and the RAM counters.
 * @param {import("./model.js").ProgressView} p
 * @param {boolean} incomingOnly a destination, which reports no RAM counters
 */
export function renderProgress(p, incomingOnly) {
  const pct = p.progress ? p.progress.percent : 0;
  const bar = $("progress");
  bar.setAttribute("aria-valuenow", String(pct));
  bar.dataset.pass = String(p.pass);
  bar.dataset.state = p.progress?.state ?? "";
  $("progress-fill").style.width = `${pct}%`;
  setText("progress-pct", p.progress ? `${pct.toFixed(1)} %` : "– %");
  setText("progress-eta", etaText(p.progress));
  const note = incomingOnly
    ? "The incoming side reports its status only, as QEMU's query-migrate does on a " +
      "destination: bytes, passes and rates are on the source's page."
    : p.transferred === undefined
    ? "No RAM counters yet: they appear when a migration starts."
    : "";
  $("bar-caption").hidden = note !== "";
  $("progress-note").hidden = note === "";
  setText("progress-note", note);
  setText("pass-label", p.pass > 0 ? `pass ${p.pass}` : "before the first pass");
  const remaining = p.progress?.remaining ?? p.remaining;
  setText("remaining", remaining === undefined ? "–" : formatBytes(remaining));
  setText("transferred", formatBytes(p.transferred));
  setText("total", formatBytes(p.total));
  const disk = diskText(p.disk);
  $("disk-row").hidden = disk === "";
  setText("disk-counters", disk);
  // The first pass and the latest ones; the count says how many lie between.
  const shown = p.passes.length > 8 ? [p.passes[0], null, ...p.passes.slice(-6)] : p.passes;
  $("passes").replaceChildren(...shown.map((x) => {
    const li = document.createElement("li");
    if (!x) {
      li.textContent = `… ${p.passes.length - 7} more`;
      li.className = "gap";
      return li;
    }
    const which = x.last === undefined ? `pass ${x.pass}` : `passes ${x.pass}–${x.last}`;
    li.textContent = `${which}: ${formatBytes(x.sent)}`;
    if (x.pass === p.pass || (x.last !== undefined && x.pass <= p.pass && p.pass <= x.last)) {
      li.className = "current";
    }
    return li;
  }));
}

/**
 * Draws the guest card and the runstate chip.
 * @param {Record<string, any> | null} m the last GET /machine
 * @param {Record<string, any>} info the followed MigrationInfo
 * @param {"source" | "destination"} side
 */
export function renderGuest(m, info, side) {
  setText("runstate", m ? `runstate ${m.runstate}` : "runstate –");
  setText("guest-runstate", m?.runstate ?? "–");
  setText("guest-ram", m ? formatBytes(m["ram-size"]) : "–");
  setText("guest-ram-pages", formatRamBacking(m?.["x-ram-backing"], m?.["ram-size"]));
  $("guest-ram-pages").title = m?.["x-ram-backing"]?.reason ?? "";
  const w = m?.workload;
  setText("guest-workload", w ? `${w.workload}${w.booted ? "" : " (not booted)"}` : "–");
  setText("guest-pages", w ? formatCount(w["pages-written"]) : "–");
  setText("incoming-status", side === "destination" ? info.status : "–");
  const blocktime = info["postcopy-blocktime"];
  setText("blocktime", blocktime === undefined ? "–" : formatMs(blocktime));
  const vcpu = info["postcopy-vcpu-blocktime"];
  setText("vcpu-blocktime", Array.isArray(vcpu) ? vcpu.map((x) => formatMs(x)).join(", ") : "–");
}
