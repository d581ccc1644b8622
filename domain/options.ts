/**
 * Every migration capability and parameter, described once. Validation, defaults, the
 * OpenAPI schemas, `GET /parameters` and `GET /capabilities` output, and the
 * `--global migration.*` start-up properties all derive from these two tables.
 * Defaults and ranges are the seed's (lines 49-87, 980-1072, 3168-3236).
 *
 * @module
 */
import { PAGE_SIZE } from "../adapters/memory/layout.ts";
import { releaseRamUnavailable } from "../adapters/memory/release_ram.ts";

/** Describes one capability: what it does, its `-global` name, and whether Ferry has it. */
export interface CapabilityDef {
  description: string;
  /** The seed's `-global migration.<name>` property, when it has one. */
  global?: string;
  /** Why Ferry cannot enable it (a Ferry limitation: the seed can); absent when it works. */
  unsupported?: string;
  /** Why this process cannot provide it (checked when it is turned on), or null. */
  unavailable?: () => string | null;
}

/** All 16 capabilities of the seed, in QMP order. */
export const CAPABILITIES = {
  "xbzrle": {
    description: "Send resent pages as XOR deltas against a page cache (XBZRLE).",
    global: "x-xbzrle",
  },
  "rdma-pin-all": {
    description: "Pin all guest memory for RDMA. It matters only on an rdma: channel, which " +
      "Ferry does not have (a migrate to an rdma: URI fails), so it changes nothing.",
    global: "x-rdma-pin-all",
  },
  "auto-converge": {
    description: "Throttle the vCPU when the guest dirties memory faster than it can be sent.",
    global: "x-auto-converge",
  },
  "zero-blocks": {
    description: "In block migration, send an all-zero disk block as a marker without its " +
      "bytes (the destination writes the zeros).",
    global: "x-zero-blocks",
  },
  "compress": {
    description: "Deflate pages with a pool of compression threads.",
    global: "x-compress",
  },
  "events": {
    description:
      "Emit MIGRATION events (SSE subscribers always receive them; kept for QMP compatibility).",
    global: "x-events",
  },
  "postcopy-ram": {
    description:
      "Allow switching to postcopy: run on the destination and fetch missing pages on demand.",
    global: "x-postcopy-ram",
  },
  "x-colo": {
    description: "COarse-grained LOck-stepping (COLO) fault tolerance: a precopy that reaches " +
      "the switchover does not complete; both sides enter status colo, the secondary runs " +
      "the guest it received and the primary sends checkpoints every x-checkpoint-delay ms.",
    global: "x-colo",
  },
  "release-ram": {
    description: "Free source pages once sent during postcopy.",
    global: "x-release-ram",
    unavailable: releaseRamUnavailable,
  },
  "block": {
    description: "Old-style (blk/-b, inc/-i) block migration: the drives move with RAM " +
      "(every block, then the blocks written meanwhile; the rest at the switchover).",
    global: "x-block",
  },
  "return-path": {
    description: "Open a return path from destination to source.",
    global: "x-return-path",
  },
  "pause-before-switchover": {
    description: "Pause in pre-switchover before the device state moves, until migrate-continue.",
  },
  "x-multifd": {
    description: "Send pages over several channels, each with its own Worker. As in QEMU, " +
      "multifd pages bypass the XBZRLE cache; with compress, compressed pages go on the main " +
      "channel; postcopy pages go on the main channel once the page channels were flushed.",
    global: "x-multifd",
  },
  "dirty-bitmaps": {
    description: "Migrate the drives' named dirty bitmaps (POST /drives/{id}/bitmaps) with a " +
      "block migration: they go at its end and keep counting on the destination.",
  },
  "postcopy-blocktime": { description: "Measure how long vCPUs wait for pages during postcopy." },
  "late-block-activate": {
    description: "On the destination: activate the drives (`active` in GET /drives) only when " +
      "the arriving guest runs, else at its `cont`; without it they are activated as soon as " +
      "the guest has arrived, running or paused. Block migration writes the image as blocks " +
      "arrive either way.",
  },
} as const satisfies Record<string, CapabilityDef>;

/** A capability name in QMP spelling. */
export type CapabilityName = keyof typeof CAPABILITIES;

/** The capability names, in QMP order. */
export const CAPABILITY_NAMES = Object.keys(CAPABILITIES) as CapabilityName[];

/** A full capability map. */
export type Capabilities = Record<CapabilityName, boolean>;

/**
 * Pairs that cannot be enabled together, read by `mergeCapabilities` (option_checks.ts)
 * (the seed's migrate_caps_check, as data).
 */
export const INCOMPATIBLE: readonly { all: readonly CapabilityName[]; message: string }[] = [
  {
    all: ["postcopy-ram", "compress"],
    message: "Postcopy is not currently compatible with compression",
  },
  // Ferry's limits: COLO's checkpoints move on the main channel of a precopy.
  { all: ["x-colo", "postcopy-ram"], message: "COLO is not compatible with postcopy" },
  { all: ["x-colo", "x-multifd"], message: "COLO is not compatible with multifd" },
];

const UINT32 = 0xffff_ffff;
/** The seed's SIZE_MAX (a 64-bit host): the largest size QMP takes. */
export const SIZE_MAX = (1n << 64n) - 1n;
const INT64_MIN = -(1n << 63n);

/**
 * Describes one parameter: JSON type, the seed's range and name, default, description.
 * A `size` is QMP's uint64 size, held exactly as a bigint (see {@link toSize}).
 */
interface ParameterDef {
  type: "integer" | "size" | "boolean" | "string";
  default: number | bigint | boolean | string;
  description: string;
  /** The seed's spelling in error texts, e.g. `compress_level`. */
  seedName: string;
  /** The seed's `-global migration.<name>` property. */
  global?: string;
  min?: number;
  /** An integer's largest value (a size's is {@link SIZE_MAX}). */
  max?: number;
  /** The seed's range text after "expects", when not "a value between min and max". */
  expects?: string;
  /** A check beyond the range on the merged set; true when the value is fine. */
  valid?: (v: bigint, all: Readonly<Record<string, unknown>>) => boolean;
}

function isPow2(v: bigint): boolean {
  return v > 0n && (v & (v - 1n)) === 0n;
}

/** All 17 parameters of the seed, in QMP order (checks run in this order). */
export const PARAMETERS = {
  "compress-level": {
    type: "integer",
    default: 1,
    min: 0,
    max: 9,
    seedName: "compress_level",
    global: "x-compress-level",
    description: "zlib level for compress: 0 none, 1 fastest ... 9 smallest.",
  },
  "compress-threads": {
    type: "integer",
    default: 8,
    min: 1,
    max: 255,
    seedName: "compress_threads",
    global: "x-compress-threads",
    description: "Compression Workers on the source.",
  },
  "compress-wait-thread": {
    type: "boolean",
    default: true,
    seedName: "compress_wait_thread",
    global: "x-compress-wait-thread",
    description: "Wait for a free compression thread instead of sending the page uncompressed.",
  },
  "decompress-threads": {
    type: "integer",
    default: 2,
    min: 1,
    max: 255,
    seedName: "decompress_threads",
    global: "x-decompress-threads",
    description: "Decompression Workers on the destination.",
  },
  "cpu-throttle-initial": {
    type: "integer",
    default: 20,
    min: 1,
    max: 99,
    seedName: "cpu_throttle_initial",
    global: "x-cpu-throttle-initial",
    description: "Initial vCPU throttle percentage for auto-converge.",
  },
  "cpu-throttle-increment": {
    type: "integer",
    default: 10,
    min: 1,
    max: 99,
    seedName: "cpu_throttle_increment",
    global: "x-cpu-throttle-increment",
    description: "Throttle increase per auto-converge step, in percent.",
  },
  "tls-creds": {
    type: "string",
    default: "",
    seedName: "tls_creds",
    description: "Id of a tls-creds-x509 object; empty for plain channels. null means empty.",
  },
  "tls-hostname": {
    type: "string",
    default: "",
    seedName: "tls_hostname",
    description:
      "Host name checked against the destination's certificate; empty means the URI's host. null means empty.",
  },
  "max-bandwidth": {
    type: "size",
    default: 32n << 20n,
    min: 0,
    expects: `an integer in the range of 0 to ${SIZE_MAX} bytes/second`,
    seedName: "max_bandwidth",
    global: "x-max-bandwidth",
    description: "Precopy bandwidth cap in bytes per second; 0 is unlimited; changes apply live.",
  },
  "downtime-limit": {
    type: "integer",
    default: 300,
    min: 0,
    max: 2_000_000,
    expects: "an integer in the range of 0 to 2000000 milliseconds",
    seedName: "downtime_limit",
    global: "x-downtime-limit",
    description: "Longest acceptable guest pause at switchover, in milliseconds.",
  },
  "x-checkpoint-delay": {
    type: "integer",
    default: 20000,
    min: 0,
    max: UINT32,
    seedName: "x_checkpoint_delay",
    global: "x-checkpoint-delay",
    description: "Delay between COLO checkpoints, in milliseconds.",
  },
  "block-incremental": {
    type: "boolean",
    default: false,
    seedName: "block_incremental",
    description: "Incremental block migration: only the disk blocks written since the " +
      "agent started (the destination's image starts as the same base image).",
  },
  "x-multifd-channels": {
    type: "integer",
    default: 2,
    min: 1,
    max: 255,
    seedName: "multifd_channels",
    global: "x-multifd-channels",
    description: "Number of multifd page channels.",
  },
  "x-multifd-page-count": {
    type: "integer",
    default: 16,
    min: 1,
    max: 10000,
    seedName: "multifd_page_count",
    global: "x-multifd-page-count",
    description: "Pages per multifd packet.",
  },
  "xbzrle-cache-size": {
    type: "size",
    default: 64n << 20n,
    min: PAGE_SIZE,
    expects: `a power of two no less than the target page size (${PAGE_SIZE})`,
    valid: (v: bigint) => isPow2(v),
    seedName: "xbzrle_cache_size",
    global: "xbzrle-cache-size",
    description:
      "XBZRLE page cache size in bytes: a power of two, at least one page; resizes live.",
  },
  "max-postcopy-bandwidth": {
    type: "size",
    default: 0n,
    min: 0,
    seedName: "max_postcopy_bandwidth",
    global: "max-postcopy-bandwidth",
    description:
      "Background page bandwidth in postcopy, bytes per second; 0 is unlimited. Requested pages are never throttled.",
  },
  "max-cpu-throttle": {
    type: "integer",
    default: 99,
    min: 1,
    max: 99,
    expects: "a value between cpu_throttle_initial and 99",
    valid: (v: bigint, all: Readonly<Record<string, unknown>>) =>
      v >= BigInt(all["cpu-throttle-initial"] as number),
    seedName: "max_cpu_throttle",
    global: "max-cpu-throttle",
    description: "Highest auto-converge throttle percentage.",
  },
} as const satisfies Record<string, ParameterDef>;

/** A parameter name in QMP spelling. */
export type ParameterName = keyof typeof PARAMETERS;

/** The parameter names, in QMP order. */
export const PARAMETER_NAMES = Object.keys(PARAMETERS) as ParameterName[];

/** A full parameter set. */
export type Parameters = {
  [K in ParameterName]: (typeof PARAMETERS)[K]["type"] extends "integer" ? number
    : (typeof PARAMETERS)[K]["type"] extends "size" ? bigint
    : (typeof PARAMETERS)[K]["type"] extends "boolean" ? boolean
    : string;
};

/** The parameters as the data path uses them: sizes as numbers (exact up to 2^53). */
export type LiveParameters = {
  [K in ParameterName]: Parameters[K] extends bigint ? number : Parameters[K];
};

/** The parameters for the data path (a size beyond 2^53 is as good as unlimited there). */
export function liveParameters(p: Parameters): LiveParameters {
  return Object.fromEntries(
    PARAMETER_NAMES.map((n) => [n, typeof p[n] === "bigint" ? Number(p[n]) : p[n]]),
  ) as LiveParameters;
}

/** The names of the size parameters. */
export const SIZE_PARAMETER_NAMES = PARAMETER_NAMES.filter((n) =>
  (PARAMETERS[n] as ParameterDef).type === "size"
);

/** The seed's error text for a parameter whose value is out of its range. */
export function rangeError(name: ParameterName): string {
  const def: ParameterDef = PARAMETERS[name];
  return `Parameter '${def.seedName}' expects ${
    def.expects ?? `a value between ${def.min} and ${def.max ?? SIZE_MAX}`
  }`;
}

/** QMP's text for a size that is no 64-bit integer (its integer visitor's). */
export function sizeTypeError(name: string): string {
  return `Invalid parameter type for '${name}', expected: uint64`;
}

/**
 * A size as QMP's integer visitor takes it: any integer from -2^63 to 2^64 − 1, a negative
 * one wrapping to 2^64 − n; null for anything else.
 */
export function toSize(value: unknown): bigint | null {
  const v = typeof value === "bigint"
    ? value
    : typeof value === "number" && Number.isSafeInteger(value)
    ? BigInt(value)
    : null;
  if (v === null || v < INT64_MIN || v > SIZE_MAX) return null;
  return v < 0n ? v + SIZE_MAX + 1n : v;
}

/** True when `value` is within `name`'s range and passes its extra check against `all`. */
export function parameterValid(name: ParameterName, value: unknown, all: Parameters): boolean {
  const def: ParameterDef = PARAMETERS[name];
  if (def.type === "size") {
    const v = value as bigint;
    return v >= BigInt(def.min!) && v <= SIZE_MAX && (def.valid?.(v, all) ?? true);
  }
  if (def.type !== "integer") return true;
  const v = value as number;
  return v >= def.min! && v <= def.max! && (def.valid?.(BigInt(v), all) ?? true);
}

/** The seed's defaults. */
export const DEFAULT_PARAMETERS = Object.fromEntries(
  PARAMETER_NAMES.map((n) => [n, PARAMETERS[n].default]),
) as Parameters;

/** The defaults: every capability off. */
export const DEFAULT_CAPABILITIES = Object.fromEntries(
  CAPABILITY_NAMES.map((n) => [n, false]),
) as Capabilities;
