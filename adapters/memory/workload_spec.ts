/**
 * `--workload` parsing (`idle`, `increment,start=1M,end=100M`, `random,rate=5000,hot=0.1`) and
 * turning a spec into the vCPU's initial registers for a given RAM size.
 *
 * @module
 */

import { PAGE_SIZE } from "./layout.ts";
import { parseSize } from "./guest_ram.ts";
import type { WorkloadRegs, WorkloadSpec } from "./workload.ts";

export type { WorkloadSpec };

/** Default increment range start (migration-test's 1 MiB). */
export const DEFAULT_INCREMENT_START = 1 << 20;
/** Default increment range end (migration-test's 100 MiB), clamped to the RAM size. */
export const DEFAULT_INCREMENT_END = 100 << 20;
/** Default `random` rate in pages per second. */
export const DEFAULT_RANDOM_RATE = 10000;
/** Highest accepted `random` rate in pages per second. */
export const MAX_RANDOM_RATE = 1e9;

const USAGE =
  "expected idle | increment[,start=SIZE,end=SIZE,rate=PAGES_PER_S,disk=on|off|WRITES_PER_S] | random[,rate=PAGES_PER_S,hot=FRACTION,disk=on|off|WRITES_PER_S,clock=on|off]";

/** `disk=on`: 4 KiB disk writes per second (adapters/disk/disk_writer.ts). */
export const DEFAULT_DISK_WRITES = 1000;

/** A `disk=` value: on (DEFAULT_DISK_WRITES a second), off (0), or writes per second. */
function parseDisk(value: string): number {
  if (value === "on") return DEFAULT_DISK_WRITES;
  if (value === "off") return 0;
  return parseNumber(
    "disk",
    value,
    (n) => n > 0 && n <= 1e6,
    "on, off or writes per second in (0, 1e6]",
  );
}

function alignedSize(key: string, value: string): number {
  const n = parseSize(value);
  if (n % PAGE_SIZE !== 0) {
    throw new RangeError(
      `workload: ${key}=${value} is not a multiple of the page size ${PAGE_SIZE}`,
    );
  }
  return n;
}

function parseNumber(key: string, value: string, ok: (n: number) => boolean, want: string) {
  const n = /^\s*[0-9.eE+-]+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isFinite(n) || !ok(n)) {
    throw new RangeError(`workload: ${key}=${value} is invalid, expected ${want}`);
  }
  return n;
}

/** Parses a `--workload` value. Throws a RangeError naming the offending part. */
export function parseWorkload(s: string): WorkloadSpec {
  const [kind, ...parts] = s.trim().split(",");
  const opts = new Map<string, string>();
  for (const part of parts) {
    const eq = part.indexOf("=");
    if (eq <= 0) throw new RangeError(`workload: '${part}' is not KEY=VALUE; ${USAGE}`);
    const key = part.slice(0, eq).trim();
    if (opts.has(key)) throw new RangeError(`workload: '${key}' given twice`);
    opts.set(key, part.slice(eq + 1).trim());
  }
  const allowed: Record<string, string[]> = {
    idle: [],
    increment: ["start", "end", "rate", "disk"],
    random: ["rate", "hot", "disk", "clock"],
  };
  if (!Object.hasOwn(allowed, kind)) {
    throw new RangeError(`workload: unknown kind '${kind}'; ${USAGE}`);
  }
  for (const key of opts.keys()) {
    if (!allowed[kind].includes(key)) {
      throw new RangeError(`workload: '${kind}' takes no option '${key}'; ${USAGE}`);
    }
  }
  if (kind === "idle") return { kind: "idle" };
  const disk = opts.has("disk") ? parseDisk(opts.get("disk")!) : 0;
  if (kind === "increment") {
    const spec: WorkloadSpec = { kind: "increment", ...(disk > 0 ? { disk } : {}) };
    const start = opts.get("start"), end = opts.get("end");
    if (start !== undefined) spec.start = alignedSize("start", start);
    if (end !== undefined) spec.end = alignedSize("end", end);
    if (spec.start !== undefined && spec.end !== undefined && spec.start >= spec.end) {
      throw new RangeError(`workload: start=${start} must be below end=${end}`);
    }
    const rate = opts.get("rate");
    if (rate !== undefined) {
      spec.rate = parseNumber(
        "rate",
        rate,
        (n) => n > 0 && n <= MAX_RANDOM_RATE,
        `pages per second in (0, ${MAX_RANDOM_RATE}]`,
      );
    }
    return spec;
  }
  const rate = opts.get("rate"), hot = opts.get("hot"), clock = opts.get("clock");
  if (clock !== undefined && clock !== "on" && clock !== "off") {
    throw new RangeError(`workload: clock=${clock} is invalid, expected on or off`);
  }
  return {
    kind: "random",
    ...(disk > 0 ? { disk } : {}),
    ...(clock === "on" ? { clock: true } : {}),
    rate: rate === undefined
      ? DEFAULT_RANDOM_RATE
      : parseNumber("rate", rate, (n) =>
        n > 0 && n <= MAX_RANDOM_RATE, `pages per second in (0, ${MAX_RANDOM_RATE}]`),
    hot: hot === undefined
      ? 1
      : parseNumber("hot", hot, (n) => n > 0 && n <= 1, "a fraction in (0, 1]"),
  };
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/**
 * The initial registers for `spec` on a guest of `ramSize` bytes. Increment defaults clamp to
 * the RAM (end = min(100M, RAM), start = 1M unless that leaves nothing, then 0); explicit
 * bounds outside the RAM throw a RangeError. `prng` seeds the PRNG (a zero seed is replaced).
 */
export function resolveWorkload(spec: WorkloadSpec, ramSize: number, prng: number[]): WorkloadRegs {
  const seed = prng.some((w) => w !== 0) ? prng.map((w) => w >>> 0) : [0x9e3779b9, 1, 2, 3];
  const regs: WorkloadRegs = {
    kind: spec.kind,
    booted: false,
    start: 0,
    end: 0,
    cursor: 0,
    passes: 0,
    pagesWritten: 0,
    rate: 0,
    hot: 0,
    prng: seed,
    nextSeq: 1,
    clock: false,
  };
  if (spec.kind === "random") {
    return { ...regs, rate: spec.rate, hot: spec.hot, clock: spec.clock ?? false };
  }
  if (spec.kind === "idle") return regs;
  const end = spec.end ?? Math.min(DEFAULT_INCREMENT_END, ramSize);
  const start = spec.start ?? (DEFAULT_INCREMENT_START < end ? DEFAULT_INCREMENT_START : 0);
  if (end > ramSize || start >= end) {
    throw new RangeError(
      `workload: increment range ${hex(start)}..${hex(end)} outside RAM of ${ramSize} bytes`,
    );
  }
  return { ...regs, start, end, cursor: start, rate: spec.rate ?? 0 };
}
