/**
 * A hand-drawn canvas chart: throughput (Mbit/s, left axis) and dirty-page rate
 * (pages/s, right axis) against the migration's total-time, with a dotted line at
 * every dirty-log pass.
 *
 * @module
 */
import { formatCount } from "./model.js";

/**
 * @typedef {object} Sample
 * @property {number} t seconds since the migration started
 * @property {number | undefined} mbps
 * @property {number | undefined} dirty pages per second
 */

/**
 * @typedef {object} PassMark
 * @property {number} t seconds since the migration started
 * @property {number} pass
 */

const THROUGHPUT = "#2563eb";
const DIRTY = "#ea580c";
const GRID = "#e5e7eb";
const INK = "#4b5563";
const PAD = { left: 64, right: 76, top: 30, bottom: 30 };

/**
 * A round axis maximum above `max` and its step, with 4 or 5 steps.
 * @param {number} max
 * @returns {{ top: number, step: number }}
 */
export function niceScale(max) {
  if (!(max > 0)) return { top: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  return { top: Math.ceil(max / step) * step, step };
}

/**
 * Redraws `canvas` (sized by CSS) with the samples and pass marks.
 * @param {HTMLCanvasElement} canvas
 * @param {Sample[]} samples
 * @param {PassMark[]} passes
 * @param {string} emptyText what to say while there are no samples
 */
export function drawChart(canvas, samples, passes, emptyText) {
  const dpr = globalThis.devicePixelRatio || 1;
  const width = canvas.clientWidth;
  const height = canvas.clientHeight;
  if (canvas.width !== Math.round(width * dpr) || canvas.height !== Math.round(height * dpr)) {
    canvas.width = Math.round(width * dpr);
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext("2d");
  if (!ctx) return;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  ctx.font = "12px system-ui, sans-serif";
  const plotW = width - PAD.left - PAD.right;
  const plotH = height - PAD.top - PAD.bottom;
  const tMax = Math.max(5, ...samples.map((s) => s.t));
  const left = niceScale(Math.max(0, ...samples.map((s) => s.mbps ?? 0)));
  const right = niceScale(Math.max(0, ...samples.map((s) => s.dirty ?? 0)));
  const time = niceScale(tMax);
  /** @param {number} t */
  const x = (t) => PAD.left + (t / time.top) * plotW;
  /** @param {number} v @param {number} top */
  const y = (v, top) => PAD.top + plotH - (v / top) * plotH;

  // Grid and axes.
  ctx.lineWidth = 1;
  ctx.textBaseline = "middle";
  for (let i = 0; i <= Math.round(left.top / left.step); i++) {
    const yy = Math.round(y(i * left.step, left.top)) + 0.5;
    ctx.strokeStyle = GRID;
    ctx.beginPath();
    ctx.moveTo(PAD.left, yy);
    ctx.lineTo(PAD.left + plotW, yy);
    ctx.stroke();
    if (samples.length === 0) continue;
    ctx.fillStyle = THROUGHPUT;
    ctx.textAlign = "right";
    ctx.fillText(formatCount(i * left.step), PAD.left - 8, yy);
  }
  ctx.textAlign = "left";
  ctx.fillStyle = DIRTY;
  for (let i = 0; samples.length > 0 && i <= Math.round(right.top / right.step); i++) {
    ctx.fillText(formatCount(i * right.step), PAD.left + plotW + 8, y(i * right.step, right.top));
  }
  ctx.textAlign = "center";
  ctx.textBaseline = "top";
  ctx.fillStyle = INK;
  for (let i = 0; i <= Math.round(time.top / time.step); i++) {
    ctx.fillText(`${+(i * time.step).toFixed(2)} s`, x(i * time.step), PAD.top + plotH + 8);
  }

  // Legend.
  ctx.textAlign = "left";
  ctx.textBaseline = "middle";
  const legend = [[THROUGHPUT, "throughput (Mbit/s)"], [DIRTY, "dirty pages/s"]];
  let lx = PAD.left;
  for (const [color, label] of legend) {
    ctx.fillStyle = color;
    ctx.fillRect(lx, 9, 14, 4);
    ctx.fillStyle = INK;
    ctx.fillText(label, lx + 20, 11);
    lx += 40 + ctx.measureText(label).width;
  }

  // Pass marks.
  ctx.setLineDash([2, 4]);
  ctx.strokeStyle = "#9ca3af";
  ctx.fillStyle = INK;
  ctx.textAlign = "left";
  ctx.font = "11px system-ui, sans-serif";
  // Labels of close passes step down so they never overlap (at most four rows).
  let labelEnd = -Infinity;
  let row = 0;
  for (const mark of passes) {
    const xx = Math.round(x(mark.t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, PAD.top);
    ctx.lineTo(xx, PAD.top + plotH);
    ctx.stroke();
    const label = `pass ${mark.pass}`;
    row = xx + 3 < labelEnd ? row + 1 : 0;
    if (row > 3) continue;
    ctx.fillText(label, xx + 3, PAD.top + 6 + row * 13);
    labelEnd = Math.max(labelEnd, xx + 3 + ctx.measureText(label).width + 4);
  }
  ctx.setLineDash([]);

  if (samples.length === 0) {
    ctx.fillStyle = "#9ca3af";
    ctx.textAlign = "center";
    ctx.font = "14px system-ui, sans-serif";
    ctx.fillText(
      emptyText,
      x(time.top / 2),
      y(0.5, 1),
    );
    return;
  }
  /**
   * @param {(s: Sample) => number | undefined} pick
   * @param {number} top
   * @param {string} color
   */
  const line = (pick, top, color) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    let pen = false;
    for (const s of samples) {
      const v = pick(s);
      if (v === undefined) {
        pen = false;
        continue;
      }
      if (pen) ctx.lineTo(x(s.t), y(v, top));
      else ctx.moveTo(x(s.t), y(v, top));
      pen = true;
    }
    ctx.stroke();
  };
  line((s) => s.dirty, right.top, DIRTY);
  line((s) => s.mbps, left.top, THROUGHPUT);
}
