/**
 * `deno task ctl`: a small command line over a Ferry agent's API, through the typed
 * openapi-fetch client generated from openapi.yaml. Exit status: 0 on success, 1 when a
 * watched migration ends failed or cancelled, 2 on a usage error or an error answer (its
 * problem `detail` is printed).
 *
 * ```
 * deno task ctl [--agent URL] [--token TOKEN] [--cacert FILE] [--cert FILE --key FILE] COMMAND ...
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { type components, type FerryClient, ferryClient, type paths } from "../sdk/client.ts";
import { type MigrationInfo, type WatchIo, watchMigration } from "./ctl_watch.ts";

type Client = FerryClient;
type ParametersPatch = components["schemas"]["MigrationParametersPatch"];
type CapabilitiesPatch = paths["/capabilities"]["patch"]["requestBody"]["content"][
  "application/json"
];
type ContinueState = components["schemas"]["ContinueRequest"]["state"];

/** The usage text. */
export const USAGE = `usage: deno task ctl [--agent URL] [--token TOKEN] [TLS OPTIONS] COMMAND

  info                     query-migrate (GET /migrations/current), as JSON
  set NAME=VALUE ...       migrate-set-parameters (set downtime-limit=500, set tls-creds=)
  caps NAME=on|off ...     migrate-set-capabilities
  migrate URI [--watch]    start a migration; --watch follows it to the end
  resume URI [--watch]     resume a paused postcopy migration on a new channel
  cancel | pause | postcopy | continue [STATE]
  incoming URI             migrate-incoming (agent started with --incoming defer)
  recover URI              migrate-recover on a postcopy-paused destination

  --agent URL   the agent (default $FERRY_AGENT or http://127.0.0.1:8080)
  --token TOKEN its --api-token (default $FERRY_API_TOKEN)
  --cacert FILE the CA that signed an https agent's certificate (its --api-tls)
  --cert FILE --key FILE   a client certificate, for an agent started with a CLIENT_CA`;

/** A failure that ends the command with exit status 2 and its message. */
export class CtlError extends Error {}

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

/** `NAME=VALUE` arguments as a merge patch, each value through `parse`. */
export function assignments(
  args: string[],
  parse: (value: string, name: string) => unknown,
): Record<string, unknown> {
  if (args.length === 0) throw new CtlError("expected NAME=VALUE");
  const patch: Record<string, unknown> = {};
  for (const arg of args) {
    const eq = arg.indexOf("=");
    if (eq <= 0) throw new CtlError(`expected NAME=VALUE, got '${arg}'`);
    patch[arg.slice(0, eq)] = parse(arg.slice(eq + 1), arg.slice(0, eq));
  }
  return patch;
}

function capability(value: string, name: string): boolean {
  const on = SWITCH[value.toLowerCase()];
  if (on === undefined) {
    throw new CtlError(`capability '${name}' expects on or off, got '${value}'`);
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
  if (rest.length !== 1) throw new CtlError(`expected ${what}`);
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
  const io: WatchIo = {
    openEvents: (last) => openEvents(client, last),
    fetchInfo: async (id) => ok(await client.GET("/migrations/{id}", { params: { path: { id } } })),
    write: out,
    tty: Deno.stdout.isTerminal(),
    columns: Deno.stdout.isTerminal() ? Deno.consoleSize().columns : undefined,
  };
  const final = await watchMigration(io, id, stream);
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
    case "set": {
      const patch = assignments(rest, parseValue);
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
      if (rest.length > 1) throw new CtlError("expected at most one STATE");
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
      throw new CtlError(`unknown command '${command}'\n${USAGE}`);
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
      return 0;
    }
    const [command, ...rest] = positionals;
    if (!command) throw new CtlError(USAGE);
    if (values.watch && command !== "migrate" && command !== "resume") {
      throw new CtlError("--watch goes with migrate or resume");
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
    const usage = e instanceof CtlError || (e as { code?: string }).code?.startsWith("ERR_PARSE");
    console.error(`ferry ctl: ${(e as Error).message}${usage ? "" : ` (${(e as Error).name})`}`);
    return 2;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
