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
 * A round axis maximum at or above `max` and its step, with at most 5 steps; the step is
 * never below `minStep` (1 for counts such as pages/s: no fractional ticks). A maximum
 * below a thousandth gives the empty axis (0 to 1, or to `minStep`).
 * @param {number} max
 * @param {number} [minStep]
 * @returns {{ top: number, step: number }}
 */
export function niceScale(max, minStep = 0) {
  // Below a thousandth (of a Mbit/s or a page/s) there is nothing to see: an empty axis.
  if (!(max >= 1e-3)) return minStep > 0 ? { top: minStep, step: minStep } : { top: 1, step: 0.25 };
  const raw = max / 4;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const nice = [1, 2, 2.5, 5, 10].map((f) => f * mag).find((s) => s >= raw) ?? 10 * mag;
  const step = Math.max(nice, minStep);
  return { top: Math.max(step, Math.ceil(max / step - 1e-9) * step), step };
}

/**
 * An axis tick's label: k/M suffixes from a thousand, else as many decimals as the step
 * has (0.25 → "0.25", never "0"), so the ticks of one axis never read alike.
 * @param {number} value
 * @param {number} step
 * @returns {string}
 */
export function tickLabel(value, step) {
  if (Math.abs(value) >= 1000 || step >= 1000) return formatCount(value);
  const decimals = Math.min(6, Math.max(0, -Math.floor(Math.log10(step) + 1e-9) + 1));
  return String(+value.toFixed(decimals));
}

/** Strides for pass lines and labels: every pass, then every 2nd, 5th, 10th, … */
const STRIDES = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000];

/**
 * Which passes get a line and which a label, so that neither piles up into a hatch: lines
 * on every k-th pass and labels on every m-th, each stride the smallest of 1, 2, 5, 10, …
 * that keeps them `lineGap` and `labelGap` px apart on average over the marks' extent; the
 * first pass and the latest always get both (a label too close before the latest gives way).
 * @param {PassMark[]} marks
 * @param {(t: number) => number} x
 * @param {{ lineGap?: number, labelGap?: number }} [gaps]
 * @returns {{ lines: PassMark[], labels: PassMark[] }}
 */
export function thinPasses(marks, x, { lineGap = 10, labelGap = 48 } = {}) {
  if (marks.length === 0) return { lines: [], labels: [] };
  const first = marks[0];
  const last = marks[marks.length - 1];
  const pxPerMark = (x(last.t) - x(first.t)) / Math.max(1, marks.length - 1);
  /** @param {number} gap */
  const stride = (gap) => STRIDES.find((k) => k * pxPerMark >= gap) ?? STRIDES[STRIDES.length - 1];
  /** @param {number} k */
  const every = (k) => marks.filter((m) => m === first || m === last || m.pass % k === 0);
  const labels = every(stride(labelGap));
  while (labels.length > 2 && x(last.t) - x(labels[labels.length - 2].t) < labelGap) {
    labels.splice(labels.length - 2, 1);
  }
  const lineStride = stride(lineGap);
  const lines = marks.filter((m) => labels.includes(m) || m.pass % lineStride === 0);
  return { lines, labels };
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
  const right = niceScale(Math.max(0, ...samples.map((s) => s.dirty ?? 0)), 1);
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
    ctx.fillText(tickLabel(i * left.step, left.step), PAD.left - 8, yy);
  }
  ctx.textAlign = "left";
  ctx.fillStyle = DIRTY;
  /** @type {string[]} */
  const rightTicks = [];
  for (let i = 0; samples.length > 0 && i <= Math.round(right.top / right.step); i++) {
    const label = tickLabel(i * right.step, right.step);
    rightTicks.push(label);
    ctx.fillText(label, PAD.left + plotW + 8, y(i * right.step, right.top));
  }
  canvas.dataset.dirtyTicks = rightTicks.join("|");
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
  // Many passes are thinned: a line where there is room, a label on every k-th pass.
  const thin = thinPasses(passes, x);
  for (const mark of thin.lines) {
    const xx = Math.round(x(mark.t)) + 0.5;
    ctx.beginPath();
    ctx.moveTo(xx, PAD.top);
    ctx.lineTo(xx, PAD.top + plotH);
    ctx.stroke();
  }
  // Labels that still come close (passes of very different lengths) step down a row.
  let labelEnd = -Infinity;
  let row = 0;
  /** @type {number[]} */
  const labelled = [];
  for (const mark of thin.labels) {
    const xx = Math.round(x(mark.t)) + 0.5;
    const label = thin.labels.length > 12 ? String(mark.pass) : `pass ${mark.pass}`;
    row = xx + 3 < labelEnd ? row + 1 : 0;
    if (row > 2) continue;
    ctx.fillText(label, xx + 3, PAD.top + 6 + row * 13);
    labelEnd = Math.max(labelEnd, xx + 3 + ctx.measureText(label).width + 4);
    labelled.push(mark.pass);
  }
  canvas.dataset.passLines = String(thin.lines.length);
  canvas.dataset.passLabels = labelled.join(" ");
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
