/**
 * The MigrationStatus state diagram as inline SVG markup: QEMU's states (colo left out),
 * every transition Ferry allows, the current state highlighted and the path taken by
 * the followed migration drawn in the accent colour. The transitions into `cancelling`
 * and `failed`, allowed from every setup-or-active state, are drawn once from the
 * dashed "setup or active" box (a statechart superstate) instead of fourteen times.
 *
 * @module
 */

/** Node width and height in SVG units. */
const W = 124;
const H = 32;

/** The states drawn, with their centres. */
export const NODES = /** @type {const} */ ({
  "none": [62, 66],
  "setup": [200, 66],
  "active": [340, 66],
  "pre-switchover": [480, 66],
  "device": [620, 66],
  "completed": [810, 112],
  "postcopy-active": [480, 152],
  "postcopy-paused": [390, 236],
  "postcopy-recover": [590, 236],
  "cancelling": [300, 318],
  "cancelled": [480, 318],
  "failed": [810, 318],
});

/** The setup-or-active states (the seed's migration_is_setup_or_active). */
export const SETUP_OR_ACTIVE = [
  "setup",
  "active",
  "pre-switchover",
  "device",
  "postcopy-active",
  "postcopy-paused",
  "postcopy-recover",
];

/** Transitions drawn state to state (the rest go from the box); per side. */
export const DIRECT = {
  source: {
    "none": ["setup"],
    "setup": ["active"],
    "active": ["completed", "pre-switchover", "postcopy-active"],
    "pre-switchover": ["device", "postcopy-active"],
    "device": ["completed"],
    "postcopy-active": ["completed", "postcopy-paused"],
    "postcopy-paused": ["postcopy-recover"],
    "postcopy-recover": ["postcopy-active", "postcopy-paused"],
    "cancelling": ["cancelled"],
  },
  destination: {
    "none": ["setup"],
    "setup": ["active"],
    "active": ["completed", "postcopy-active"],
    "postcopy-active": ["completed", "postcopy-paused"],
    "postcopy-paused": ["postcopy-recover"],
    "postcopy-recover": ["postcopy-active", "postcopy-paused"],
  },
};

/** Targets reached from the box, per side (the destination is never cancelled). */
export const FROM_BOX = { source: ["cancelling", "failed"], destination: ["failed"] };

const BOX = { x: 126, y: 26, w: 570, h: 240 };

/**
 * The drawn edge a transition runs along: "from>to", or "box>to" for the box's edges.
 * @param {string} from
 * @param {string} to
 * @returns {string}
 */
export function edgeKey(from, to) {
  const direct = /** @type {Record<string, string[]>} */ (DIRECT.source)[from];
  if (direct?.includes(to)) return `${from}>${to}`;
  if (SETUP_OR_ACTIVE.includes(from) && FROM_BOX.source.includes(to)) return `box>${to}`;
  return `${from}>${to}`;
}

/**
 * Where the segment from the centre of a node towards (tx, ty) leaves its border.
 * @param {readonly number[]} c
 * @param {number} tx
 * @param {number} ty
 * @returns {number[]}
 */
function border(c, tx, ty) {
  const dx = tx - c[0];
  const dy = ty - c[1];
  const t = Math.min(
    dx === 0 ? Infinity : (W / 2 + 3) / Math.abs(dx),
    dy === 0 ? Infinity : (H / 2 + 3) / Math.abs(dy),
  );
  return [c[0] + dx * t, c[1] + dy * t];
}

/**
 * @param {number} n
 * @returns {string}
 */
const r = (n) => n.toFixed(1);

/**
 * The SVG path of the edge `from` → `to` (both drawn nodes).
 * @param {string} from
 * @param {string} to
 * @returns {string}
 */
function edgePath(from, to) {
  const a = NODES[/** @type {keyof typeof NODES} */ (from)];
  const b = NODES[/** @type {keyof typeof NODES} */ (to)];
  if (from === "active" && to === "completed") {
    // Over the top of pre-switchover and device.
    return `M${a[0]},${a[1] - H / 2 - 3} Q575,-34 ${b[0] - 10},${b[1] - H / 2 - 3}`;
  }
  // The two edges between paused and recover run side by side.
  const pair = (from === "postcopy-paused" && to === "postcopy-recover")
    ? -6
    : (from === "postcopy-recover" && to === "postcopy-paused")
    ? 6
    : 0;
  const p = border(a, b[0], b[1]);
  const q = border(b, a[0], a[1]);
  return `M${r(p[0])},${r(p[1] + pair)} L${r(q[0])},${r(q[1] + pair)}`;
}

/**
 * The SVG path from the box to `to`.
 * @param {string} to
 * @returns {string}
 */
function boxPath(to) {
  const b = NODES[/** @type {keyof typeof NODES} */ (to)];
  const start = to === "failed" ? [BOX.x + BOX.w, BOX.y + BOX.h - 16] : [b[0], BOX.y + BOX.h];
  const q = border(b, start[0], start[1]);
  return `M${r(start[0])},${r(start[1])} L${r(q[0])},${r(q[1])}`;
}

/**
 * @typedef {object} DiagramState
 * @property {string} current the status to highlight
 * @property {string[]} path the statuses the followed migration went through, in order
 * @property {"source" | "destination"} side which table applies
 */

/**
 * The diagram's SVG markup. Only fixed state names go into it, never data from the agent
 * other than which of those names are current or visited.
 * @param {DiagramState} state
 * @returns {string}
 */
export function diagramSvg({ current, path, side }) {
  const taken = new Set();
  for (let i = 1; i < path.length; i++) taken.add(edgeKey(path[i - 1], path[i]));
  const visited = new Set(path);
  const direct = /** @type {Record<string, string[]>} */ (DIRECT[side]);
  const reachable = new Set(["none", ...Object.values(direct).flat(), ...FROM_BOX[side]]);
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="-4 -8 904 352" role="img"`,
    ` aria-label="Migration state diagram, current state ${current}">`,
    `<defs>`,
    `<marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7"`,
    ` orient="auto-start-reverse"><path class="arrowhead" d="M0,0 L10,5 L0,10 z"/></marker>`,
    `<marker id="arrow-taken" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7"`,
    ` markerHeight="7" orient="auto-start-reverse">`,
    `<path class="arrowhead taken" d="M0,0 L10,5 L0,10 z"/></marker>`,
    `</defs>`,
    `<rect class="superstate" x="${BOX.x}" y="${BOX.y}" width="${BOX.w}" height="${BOX.h}"`,
    ` rx="14"/>`,
    `<text class="superstate-label" x="${BOX.x + 14}" y="148">setup or active</text>`,
    `<text class="superstate-note" x="${BOX.x + 14}" y="165">cancel or an error leaves</text>`,
    `<text class="superstate-note" x="${BOX.x + 14}" y="180">from any state in here</text>`,
  ];
  /**
   * @param {string} key
   * @param {string} d
   * @param {boolean} on
   */
  const edge = (key, d, on) => {
    const cls = `edge${taken.has(key) ? " taken" : ""}${on ? "" : " off"}`;
    const marker = taken.has(key) ? "arrow-taken" : "arrow";
    parts.push(`<path class="${cls}" data-edge="${key}" d="${d}" marker-end="url(#${marker})"/>`);
  };
  for (const [from, targets] of Object.entries(DIRECT.source)) {
    for (const to of targets) {
      edge(`${from}>${to}`, edgePath(from, to), !!direct[from]?.includes(to));
    }
  }
  for (const to of FROM_BOX.source) edge(`box>${to}`, boxPath(to), FROM_BOX[side].includes(to));
  for (const [name, c] of Object.entries(NODES)) {
    const cls = [
      "node",
      name === current ? "current" : visited.has(name) ? "visited" : "",
      reachable.has(name) ? "" : "off",
      name,
    ].filter(Boolean).join(" ");
    parts.push(
      `<g class="${cls}" data-state="${name}">`,
      `<rect x="${c[0] - W / 2}" y="${c[1] - H / 2}" width="${W}" height="${H}" rx="8"/>`,
      `<text x="${c[0]}" y="${c[1] + 4.5}" text-anchor="middle">${name}</text></g>`,
    );
  }
  parts.push(`</svg>`);
  return parts.join("");
}
