/**
 * The agent's command line (contract.md, "Command line"): parsed and checked in full
 * before anything is built, so a bad flag, or an API that would be open off loopback,
 * stops the agent before it allocates a guest or listens.
 *
 * @module
 */
import { parseArgs, type ParseArgsOptionsConfig } from "node:util";
import { TlsCredsRegistry } from "./adapters/channels/tls_creds.ts";
import { parseMigrationUri } from "./adapters/channels/uri.ts";
import { type RamBlockSpec, validateBlockSpecs } from "./adapters/memory/layout.ts";
import { parseGuest, parseSize, parseWorkload } from "./adapters/memory/machine.ts";
import { hugePagesModeFrom } from "./adapters/memory/ram_backing.ts";
import { resolveWorkload } from "./adapters/memory/workload_spec.ts";
import type { GuestSpec } from "./adapters/wasm/wasm_guest.ts";
import type { AgentConfig } from "./domain/agent.ts";
import { requireExecAllowed } from "./domain/exec_policy.ts";
import { type Globals, parseGlobals } from "./domain/globals.ts";
import { type LogLevel, parseLogLevel } from "./domain/log.ts";
import { LINK_TIMEOUT_RANGE } from "./domain/engine/link_watch.ts";
import { parseArbiter } from "./domain/colo_arbiter.ts";
import {
  type ApiListen,
  exposureProblem,
  type HostNames,
  hostNamesFor,
  parseListen,
} from "./routes/api_access.ts";
import { MAX_SSE_SUBSCRIBERS } from "./routes/limits.ts";
import { type ApiTls, readApiTls } from "./routes/serve.ts";
import { HelpRequested } from "./cli_usage.ts";
import { checkDriveFile, checkDrives, parseDrive } from "./adapters/disk/drive_spec.ts";

/** Everything the command line decides. */
export interface StartOptions {
  agent: AgentConfig;
  logLevel: LogLevel;
  listen: ApiListen;
  /** The bearer token every request but /healthz needs; never logged. */
  apiToken?: string;
  apiTls?: ApiTls;
  hosts: HostNames;
  maxSseSubscribers: number;
}

/** A command line the agent cannot start with; the message says why. */
export class UsageError extends Error {}

function blocksFrom(ram: string | undefined, blocks: string[]): RamBlockSpec[] {
  const specs = blocks.map((b) => {
    const m = /^([^=]+)=(.+)$/.exec(b);
    if (!m) throw new UsageError(`--ram-block expects NAME=SIZE, got '${b}'`);
    return { name: m[1], size: parseSize(m[2]) };
  });
  if (ram && specs.some((s) => s.name === "pc.ram")) {
    throw new UsageError("--ram is the pc.ram block: give its size once, not again in --ram-block");
  }
  if (specs.length === 0 || ram) specs.unshift({ name: "pc.ram", size: parseSize(ram ?? "128M") });
  // Names unique (`--ram` is the pc.ram block), sizes whole pages: as the guest will check.
  validateBlockSpecs(specs);
  return specs;
}

/** The size of a WebAssembly guest's memory (and so its one RAM block). */
const WASM_PAGE = 65536;

/**
 * What `--guest` needs of the RAM layout and the file system before anything is built: one
 * RAM block of whole wasm pages, and a module file this process can open. What the module
 * holds is checked when it is loaded.
 */
async function checkGuest(guest: GuestSpec, blocks: RamBlockSpec[]): Promise<void> {
  if (blocks.length !== 1) {
    throw new UsageError("a WebAssembly guest has one RAM block (no --ram-block)");
  }
  if (blocks[0].size % WASM_PAGE !== 0) {
    throw new UsageError(`--ram ${blocks[0].size} is not a multiple of the 64 KiB wasm page`);
  }
  let file: Deno.FsFile | undefined;
  try {
    file = await Deno.open(guest.path, { read: true });
    if (!(await file.stat()).isFile) throw new Error("not a file");
  } catch (e) {
    throw new UsageError(`wasm guest: cannot read ${guest.path}: ${(e as Error).message}`);
  } finally {
    file?.close();
  }
}

function positive(text: string, flag: string): number {
  if (!/^[1-9]\d{0,8}$/.test(text)) {
    throw new UsageError(`${flag} expects a positive integer, got '${text}'`);
  }
  return Number(text);
}

/** FERRY_LINK_TIMEOUT_MS (hidden: for tests), checked; undefined: the default. */
function linkTimeoutFrom(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const ms = Number(text);
  const { min, max } = LINK_TIMEOUT_RANGE;
  if (!Number.isInteger(ms) || ms < min || ms > max) {
    throw new UsageError(
      `FERRY_LINK_TIMEOUT_MS expects milliseconds in ${min}..${max}, got '${text}'`,
    );
  }
  return ms;
}

/** An on/off environment variable: 1/true/on/yes or 0/false/off/no (unset or empty: off). */
function switchFrom(name: string, text: string | undefined): boolean {
  const v = (text ?? "").trim().toLowerCase();
  if (["1", "true", "on", "yes"].includes(v)) return true;
  if (["", "0", "false", "off", "no"].includes(v)) return false;
  throw new UsageError(`${name} expects 1 or 0, got '${text}'`);
}

/** Runs `f`, turning anything it throws into a UsageError with the same message. */
function usage<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw e instanceof UsageError ? e : new UsageError((e as Error).message);
  }
}

/** The host's own names, for a listener on every address. */
function localNames(): { hostname: string; addresses: string[] } {
  return {
    hostname: Deno.hostname(),
    addresses: Deno.networkInterfaces().map((i) => i.address),
  };
}

/**
 * Parses and checks `args` (and the FERRY_* variables `env` gives: the process's environment
 * unless told otherwise); reads the `--api-tls` and `--object` files. Throws UsageError with a
 * message for the user.
 */
export async function parseCommandLine(
  args: string[],
  env: (name: string) => string | undefined = (name) => Deno.env.get(name),
): Promise<StartOptions> {
  if (args.includes("--help") || args.includes("-h")) throw new HelpRequested();
  const { values } = usage(() =>
    parseArgs({
      args,
      options: START_OPTIONS,
      strict: true,
    })
  );
  return await checked(values, env);
}

/** Every option the agent takes, as node:util's parseArgs reads them. */
export const START_OPTIONS = {
  listen: { type: "string", default: "127.0.0.1:8080" },
  incoming: { type: "string" },
  ram: { type: "string" },
  "ram-block": { type: "string", multiple: true, default: [] as string[] },
  fill: { type: "string", default: "zero" },
  workload: { type: "string", default: "idle" },
  S: { type: "boolean", short: "S", default: false },
  global: { type: "string", multiple: true, default: [] as string[] },
  object: { type: "string", multiple: true, default: [] as string[] },
  "api-token": { type: "string" },
  "api-host": { type: "string", multiple: true, default: [] as string[] },
  "api-tls": { type: "string" },
  "allow-exec": { type: "boolean", default: false },
  "max-sse-subscribers": { type: "string", default: String(MAX_SSE_SUBSCRIBERS) },
  "only-migratable": { type: "boolean", default: false },
  "log-level": { type: "string", default: "info" },
  "huge-pages": { type: "string" },
  guest: { type: "string" },
  "arrival-digest": { type: "boolean", default: false },
  drive: { type: "string", multiple: true, default: [] as string[] },
  "colo-arbiter": { type: "string" },
} satisfies ParseArgsOptionsConfig;

type StartValues = ReturnType<typeof parseArgs<{ options: typeof START_OPTIONS }>>["values"];

/** Checks parsed `values` and builds what they decide (reads the TLS files). */
async function checked(
  values: StartValues,
  env: (name: string) => string | undefined,
): Promise<StartOptions> {
  if (!["zero", "random", "pattern"].includes(values.fill)) {
    throw new UsageError(`--fill expects zero, random or pattern`);
  }
  const logLevel = usage(() => parseLogLevel(values["log-level"]));
  const globals: Globals = usage(() => parseGlobals(values.global));
  const listen = usage(() => parseListen(values.listen));
  const hosts = usage(() =>
    hostNamesFor(listen, values["api-host"].map((h) => h.trim()), localNames)
  );
  const apiToken = values["api-token"] || env("FERRY_API_TOKEN") || undefined;
  const apiTls = values["api-tls"] === undefined ? undefined : await readApiTls(
    values["api-tls"],
  ).catch((e) => {
    throw new UsageError((e as Error).message);
  });
  const exposed = exposureProblem(listen, {
    token: apiToken !== undefined,
    clientCertificates: apiTls?.clientCa !== undefined,
  });
  if (exposed !== null) throw new UsageError(exposed);
  const allowExec = values["allow-exec"];
  const incoming = values.incoming ?? null;
  if (incoming !== null) {
    usage(() => parseMigrationUri(incoming, "incoming"));
    usage(() => requireExecAllowed(incoming, "incoming", allowExec));
  }
  const hugePages = usage(() => hugePagesModeFrom(values["huge-pages"]));
  const blocks = usage(() => blocksFrom(values.ram, values["ram-block"]));
  const linkTimeoutMs = linkTimeoutFrom(env("FERRY_LINK_TIMEOUT_MS"));
  const arrivalDigest = values["arrival-digest"] ||
    switchFrom("FERRY_ARRIVAL_DIGEST", env("FERRY_ARRIVAL_DIGEST"));
  const workload = usage(() => parseWorkload(values.workload));
  // An increment range must lie in the RAM, as the vCPU will check.
  usage(() => resolveWorkload(workload, blocks.reduce((n, b) => n + b.size, 0), []));
  const guest = values.guest === undefined ? undefined : usage(() => parseGuest(values.guest!));
  if (guest && values.workload !== "idle") {
    throw new UsageError("--guest and --workload exclude each other: the guest is the program");
  }
  if (guest) await checkGuest(guest, blocks);
  const drives = usage(() => {
    const specs = values.drive.map(parseDrive);
    checkDrives(specs);
    specs.forEach(checkDriveFile);
    return specs;
  });
  const arbiter = values["colo-arbiter"];
  const coloArbiter = arbiter === undefined ? undefined : usage(() => parseArbiter(arbiter));
  const tls = await TlsCredsRegistry.fromObjects(values.object).catch((e) => {
    throw new UsageError((e as Error).message);
  });
  return {
    agent: {
      blocks,
      fill: values.fill as "zero" | "random" | "pattern",
      workload,
      startPaused: values.S,
      incoming,
      parameters: globals.parameters,
      tls,
      capabilities: globals.capabilities,
      onlyMigratable: values["only-migratable"] || globals.flags["only-migratable"],
      globals: globals.flags,
      hugePages,
      allowExec,
      ...(guest ? { guest } : {}),
      linkTimeoutMs,
      arrivalDigest,
      drives,
      ...(coloArbiter ? { coloArbiter } : {}),
    },
    logLevel,
    listen,
    apiToken,
    apiTls,
    hosts,
    maxSseSubscribers: positive(values["max-sse-subscribers"], "--max-sse-subscribers"),
  };
}
