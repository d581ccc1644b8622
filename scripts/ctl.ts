/**
 * `deno task ctl`: a small command line over a Ferry agent's API, through the typed
 * openapi-fetch client generated from openapi.yaml. Exit status: 0 on success, 1 when a
 * watched migration ends failed or cancelled, 2 on a usage error (the message and the usage
 * text, also for `--help`) or an error answer (its problem `detail` is printed).
 *
 * ```
 * deno task ctl [--agent URL] [--token TOKEN] [--cacert FILE] [--cert FILE --key FILE] COMMAND ...
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type components, type FerryClient, ferryClient, type paths } from "../sdk/client.ts";
import { parseSize } from "../adapters/memory/guest_ram.ts";
import { SIZE_PARAMETER_NAMES } from "../domain/options.ts";
import { type MigrationInfo, summaryLine, type WatchIo, watchMigration } from "./ctl_watch.ts";

type Client = FerryClient;
type ParametersPatch = components["schemas"]["MigrationParametersPatch"];
type CapabilitiesPatch = paths["/capabilities"]["patch"]["requestBody"]["content"][
  "application/json"
];
type ContinueState = components["schemas"]["ContinueRequest"]["state"];

/** The usage text: every command and flag, its default, examples, exit status. */
export const USAGE =
  `usage: deno task ctl [--agent URL] [--token TOKEN] [TLS OPTIONS] COMMAND [ARGS...] [--watch]

commands:
  info                     query-migrate (GET /migrations/current), as JSON
  set NAME=VALUE ...       migrate-set-parameters; sizes take a K/M/G/T suffix as --ram
                           does (max-bandwidth=24M, xbzrle-cache-size=64M); tls-creds= empties
  caps NAME=on|off ...     migrate-set-capabilities
  migrate URI [--watch]    start a migration (tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)
  watch                    follow the migration already running (GET /migrations/current)
                           to its end: progress, ETA and verdict as the agent reports them
  resume URI [--watch]     resume a paused postcopy migration on a new channel
  cancel | pause | postcopy
  continue [STATE]         migrate-continue (STATE defaults to pre-switchover)
  incoming URI             migrate-incoming (agent started with --incoming defer)
  recover URI              migrate-recover on a postcopy-paused destination

options:
  --agent URL    the agent (default: $FERRY_AGENT, else http://127.0.0.1:8080)
  --token TOKEN  its --api-token (default: $FERRY_API_TOKEN, else none)
  --cacert FILE  the CA that signed an https agent's certificate (its --api-tls)
  --cert FILE --key FILE  a client certificate, for an agent started with a CLIENT_CA
  --watch        with migrate or resume: follow it to the end (default: off)
  -h, --help     this text

examples:
  deno task ctl set max-bandwidth=24M downtime-limit=300
  deno task ctl migrate tcp:127.0.0.1:4444 --watch
  deno task ctl --agent http://127.0.0.1:8081 watch

exit status: 0 done (a watched migration completed), 1 a watched migration failed or was
cancelled, 2 a usage error (this text) or an error answer (the agent's detail).`;

/** A failure that ends the command with exit status 2 and its message. */
export class CtlError extends Error {}

/** A bad command line: exit status 2, its message, then the usage text. */
export class UsageError extends CtlError {}

/** A command-line value as JSON: numbers, booleans, null, JSON arrays/objects, else the text. */
export function parseValue(text: string): unknown {
  if (text === "true" || text === "false") return text === "true";
  if (text === "null") return null;
  if (/^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text)) return Number(text);
  if (/^[[{]/.test(text)) {
    try {
      return JSON.parse(text);
    } catch { /* not JSON: the text itself */ }
  }
  return text;
}

const SWITCH: Record<string, boolean> = { on: true, off: false, true: true, false: false };

const SIZES: ReadonlySet<string> = new Set(SIZE_PARAMETER_NAMES);

/**
 * A `set` value: sizes (max-bandwidth, xbzrle-cache-size, max-postcopy-bandwidth) as the
 * agent's `--ram` takes them (`parseSize`: B, K, M, G, T, P, E, powers of 1024, any case,
 * e.g. `1G`, `1.5G`, `65536`), everything else as {@link parseValue}.
 */
export function parameterValue(text: string, name: string): unknown {
  if (!SIZES.has(name) || text === "null") return parseValue(text);
  try {
    return parseSize(text);
  } catch (e) {
    throw new UsageError(`${name}: ${(e as Error).message}`);
  }
}

/** `NAME=VALUE` arguments as a merge patch, each value through `parse`. */
export function assignments(
  args: string[],
  parse: (value: string, name: string) => unknown,
): Record<string, unknown> {
  if (args.length === 0) throw new UsageError("expected NAME=VALUE");
  const patch: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq <= 0) throw new UsageError(`expected NAME=VALUE, got '${arg}'`);
    patch[arg.slice(0, eq)] = parse(arg.slice(eq + 1), arg.slice(0, eq));
  }
  return patch;
}

function capability(value: string, name: string): boolean {
  const on = SWITCH[value.toLowerCase()];
  if (on === undefined) {
    throw new UsageError(`capability '${name}' expects on or off, got '${value}'`);
  }
  return on;
}

/** The body of an openapi-fetch result, or a CtlError with the problem's detail. */
function ok<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || result.data === undefined) {
    const e = result.error as { detail?: unknown } | string | undefined;
    const detail = typeof e === "object" && e && typeof e.detail === "string"
      ? e.detail
      : `${result.response.status} ${result.response.statusText} ${typeof e === "string" ? e : ""}`;
    throw new CtlError(detail.trim());
  }
  return result.data;
}

function one(rest: string[], what: string): string {
  if (rest.length !== 1) throw new UsageError(`expected ${what}`);
  return rest[0];
}

function showValue(value: unknown): string {
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** Opens the event stream (before the migration starts, so nothing is missed). */
async function openEvents(client: Client, lastEventId?: string) {
  const r = await client.GET("/events", {
    parseAs: "stream",
    params: { header: lastEventId ? { "last-event-id": lastEventId } : {} },
  });
  if (!r.response.ok || !r.response.body) {
    throw new CtlError(`GET /events answered ${r.response.status}`);
  }
  return r.response.body;
}

/** POST /migrations (a new one, or a resume), optionally watched; returns the exit status. */
async function migrate(
  client: Client,
  body: { uri: string; resume?: boolean },
  watch: boolean,
  out: (text: string) => void,
): Promise<number> {
  const stream = watch ? await openEvents(client) : undefined;
  let started: MigrationInfo;
  try {
    started = ok(await client.POST("/migrations", { body })) as MigrationInfo;
  } catch (e) {
    await stream?.cancel();
    throw e;
  }
  const id = started["x-id"] ?? "";
  out(`${body.resume ? "resuming" : "started"} ${id} (${started.status})\n`);
  if (!stream) return 0;
  const final = await watchMigration(watchIo(client, out), id, stream);
  return final.status === "completed" ? 0 : 1;
}

/** Where a watch reads (this agent) and writes (`out`, redrawn on a terminal). */
function watchIo(client: Client, out: (text: string) => void): WatchIo {
  return {
    openEvents: (last) => openEvents(client, last),
    fetchInfo: async (id) => ok(await client.GET("/migrations/{id}", { params: { path: { id } } })),
    write: out,
    tty: Deno.stdout.isTerminal(),
    columns: Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined,
  };
}

const FINISHED = new Set(["completed", "failed", "cancelled"]);

/**
 * `watch`: attaches to the migration the agent reports (its outgoing one, else its incoming
 * one) and follows it to the end. The stream is opened before the query, so nothing that
 * happens in between is missed; one already over gets its summary line.
 */
async function attach(client: Client, out: (text: string) => void): Promise<number> {
  const stream = await openEvents(client);
  let info: MigrationInfo;
  try {
    info = ok(await client.GET("/migrations/current"));
  } catch (e) {
    await stream.cancel();
    throw e;
  }
  const id = info["x-id"];
  if (info.status === "none" || id === undefined) {
    await stream.cancel();
    throw new CtlError("no migration to watch: the agent reports status none");
  }
  if (FINISHED.has(info.status)) {
    await stream.cancel();
    out(`${summaryLine(info)}\n`);
    return info.status === "completed" ? 0 : 1;
  }
  const side = info["x-side"] ?? "source";
  out(`watching ${id} (${side}, ${info.status})\n`);
  const final = await watchMigration(watchIo(client, out), id, stream, side, info);
  return final.status === "completed" ? 0 : 1;
}

/** Runs one command against `client`, writing to `out`; resolves to the exit status. */
export async function runCommand(
  client: Client,
  command: string,
  rest: string[],
  watch: boolean,
  out: (text: string) => void,
): Promise<number> {
  const status = (info: MigrationInfo) => out(`status: ${info.status}\n`);
  switch (command) {
    case "info":
      out(JSON.stringify(ok(await client.GET("/migrations/current")), null, 2) + "\n");
      return 0;
    case "watch":
      if (rest.length > 0) throw new UsageError("watch takes no arguments");
      return await attach(client, out);
    case "set": {
      const patch = assignments(rest, parameterValue);
      const map = ok(await client.PATCH("/parameters", { body: patch as ParametersPatch }));
      for (const name of Object.keys(patch)) {
        out(`${name}=${showValue((map as Record<string, unknown>)[name])}\n`);
      }
      return 0;
    }
    case "caps": {
      const patch = assignments(rest, capability);
      const map = ok(await client.PATCH("/capabilities", { body: patch as CapabilitiesPatch }));
      for (const name of Object.keys(patch)) {
        out(`${name}=${(map as Record<string, boolean>)[name] ? "on" : "off"}\n`);
      }
      return 0;
    }
    case "migrate":
      return await migrate(client, { uri: one(rest, "URI") }, watch, out);
    case "resume":
      return await migrate(client, { uri: one(rest, "URI"), resume: true }, watch, out);
    case "cancel":
      status(ok(await client.POST("/migrations/current/cancel")));
      return 0;
    case "pause":
      status(ok(await client.POST("/migrations/current/pause")));
      return 0;
    case "postcopy":
      status(ok(await client.POST("/migrations/current/postcopy")));
      return 0;
    case "continue": {
      if (rest.length > 1) throw new UsageError("expected at most one STATE");
      const state = (rest[0] ?? "pre-switchover") as ContinueState;
      status(ok(await client.POST("/migrations/current/continue", { body: { state } })));
      return 0;
    }
    case "incoming":
      status(ok(await client.POST("/migrations/incoming", { body: { uri: one(rest, "URI") } })));
      return 0;
    case "recover": {
      const uri = one(rest, "URI");
      status(ok(await client.POST("/migrations/incoming/recover", { body: { uri } })));
      return 0;
    }
    default:
      throw new UsageError(`unknown command '${command}'`);
  }
}

/** An HTTP client trusting `cacert` and presenting `cert`/`key`; undefined when none is given. */
async function httpClient(
  cacert?: string,
  cert?: string,
  key?: string,
): Promise<Deno.HttpClient | undefined> {
  if ((cert === undefined) !== (key === undefined)) {
    throw new CtlError("--cert and --key go together");
  }
  if (cacert === undefined && cert === undefined) return undefined;
  const read = async (path: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new CtlError(`cannot read '${path}': ${(e as Error).message}`);
    }
  };
  return Deno.createHttpClient({
    caCerts: cacert === undefined ? undefined : [await read(cacert)],
    ...(cert !== undefined && key !== undefined
      ? { cert: await read(cert), key: await read(key) }
      : {}),
  });
}

/** The command line; resolves to the exit status. */
export async function main(args: string[]): Promise<number> {
  const encoder = new TextEncoder();
  const out = (text: string) => {
    const bytes = encoder.encode(text);
    for (let done = 0; done < bytes.length;) done += Deno.stdout.writeSync(bytes.subarray(done));
  };
  try {
    const { values, positionals } = parseArgs({
      args,
      options: {
        agent: { type: "string" },
        token: { type: "string" },
        cacert: { type: "string" },
        cert: { type: "string" },
        key: { type: "string" },
        watch: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    if (values.help) {
      out(USAGE + "\n");
      return 2;
    }
    const [command, ...rest] = positionals;
    if (!command) throw new UsageError("expected a COMMAND");
    if (values.watch && command !== "migrate" && command !== "resume") {
      throw new UsageError(
        "--watch goes with migrate or resume (`watch` attaches to a running one)",
      );
    }
    const baseUrl = (values.agent ?? Deno.env.get("FERRY_AGENT") ?? "http://127.0.0.1:8080")
      .replace(/\/+$/, "");
    const token = values.token ?? Deno.env.get("FERRY_API_TOKEN");
    const http = await httpClient(values.cacert, values.cert, values.key);
    const client = ferryClient({
      baseUrl,
      token,
      ...(http ? { fetch: (request: Request) => fetch(request, { client: http }) } : {}),
    });
    try {
      return await runCommand(client, command, rest, values.watch!, out);
    } catch (e) {
      if (e instanceof TypeError) throw new CtlError(`cannot reach ${baseUrl}: ${e.message}`);
      throw e;
    }
  } catch (e) {
    const parse = (e as { code?: string }).code?.startsWith("ERR_PARSE") ?? false;
    const known = e instanceof CtlError || parse;
    console.error(`ferry ctl: ${(e as Error).message}${known ? "" : ` (${(e as Error).name})`}`);
    if (e instanceof UsageError || parse) console.error(`\n${USAGE}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
