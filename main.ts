/**
 * Ferry agent: parses the command line (see contract.md), builds the agent, serves the
 * API on TCP or a unix socket, and shuts down cleanly on SIGINT/SIGTERM.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { Agent } from "./domain/agent.ts";
import { TlsCredsRegistry } from "./adapters/channels/tls_creds.ts";
import { parseGlobals } from "./domain/globals.ts";
import { createLogger, type LogLevel, migrationEventLogger, parseLogLevel } from "./domain/log.ts";
import { PAGE_SIZE, type RamBlockSpec } from "./adapters/memory/layout.ts";
import { parseSize, parseWorkload } from "./adapters/memory/machine.ts";
import { createApp } from "./routes/app.ts";
import { FerryMetrics } from "./routes/metrics.ts";

/** How long a shutdown waits for open HTTP requests and SSE streams after the agent closed. */
const SHUTDOWN_GRACE_MS = 1500;

function fail(message: string): never {
  console.error(`ferry: ${message}`);
  Deno.exit(1);
}

function blocksFrom(ram: string | undefined, blocks: string[]): RamBlockSpec[] {
  const specs = blocks.map((b) => {
    const m = /^([^=]+)=(.+)$/.exec(b);
    if (!m) fail(`--ram-block expects NAME=SIZE, got '${b}'`);
    return { name: m[1], size: parseSize(m[2]) };
  });
  if (specs.length === 0 || ram) specs.unshift({ name: "pc.ram", size: parseSize(ram ?? "128M") });
  for (const s of specs) {
    if (s.size <= 0 || s.size % PAGE_SIZE !== 0) {
      fail(`RAM block '${s.name}' size ${s.size} is not a positive multiple of ${PAGE_SIZE}`);
    }
  }
  return specs;
}

/** Starts an agent from `args`; resolves when it has shut down. */
export async function main(args: string[]): Promise<void> {
  const { values } = parseArgs({
    args,
    options: {
      listen: { type: "string", default: "127.0.0.1:8080" },
      incoming: { type: "string" },
      ram: { type: "string" },
      "ram-block": { type: "string", multiple: true, default: [] },
      fill: { type: "string", default: "zero" },
      workload: { type: "string", default: "idle" },
      S: { type: "boolean", short: "S", default: false },
      global: { type: "string", multiple: true, default: [] },
      object: { type: "string", multiple: true, default: [] },
      "api-token": { type: "string" },
      "only-migratable": { type: "boolean", default: false },
      "log-level": { type: "string", default: "info" },
      "huge-pages": { type: "string" },
    },
    strict: true,
  });
  if (!["zero", "random", "pattern"].includes(values.fill!)) {
    fail(`--fill expects zero, random or pattern`);
  }
  let logLevel: LogLevel = "info";
  try {
    logLevel = parseLogLevel(values["log-level"]!);
  } catch (e) {
    fail((e as Error).message);
  }
  const logger = createLogger(logLevel);
  let globals;
  try {
    globals = parseGlobals(values.global!);
  } catch (e) {
    fail((e as Error).message);
  }
  let agent: Agent;
  try {
    agent = await Agent.create({
      blocks: blocksFrom(values.ram, values["ram-block"]!),
      fill: values.fill as "zero" | "random" | "pattern",
      workload: parseWorkload(values.workload!),
      startPaused: values.S!,
      incoming: values.incoming ?? null,
      parameters: globals.parameters,
      tls: await TlsCredsRegistry.fromObjects(values.object!).catch((e) =>
        fail((e as Error).message)
      ),
      capabilities: globals.capabilities,
      onlyMigratable: values["only-migratable"] || globals.flags["only-migratable"],
      globals: globals.flags,
      hugePages: values["huge-pages"],
      logger,
    });
  } catch (e) {
    fail((e as Error).message);
  }
  const apiToken = values["api-token"] || Deno.env.get("FERRY_API_TOKEN") || undefined;
  const metrics = new FerryMetrics(() => agent);
  metrics.follow(agent.events, migrationEventLogger(logger, (id) => agent.get(id)["error-desc"]));
  const app = createApp(agent, { apiToken, metrics, logger });
  const listen = values.listen!;
  const onListen = (addr: Deno.Addr) =>
    logger.announce("listening", {
      addr: addr.transport === "unix"
        ? `unix:${(addr as Deno.UnixAddr).path}`
        : `${(addr as Deno.NetAddr).hostname}:${(addr as Deno.NetAddr).port}`,
      incoming: agent.incomingUri,
    });
  let server: Deno.HttpServer;
  if (listen.startsWith("unix:")) {
    const path = listen.slice(5);
    try {
      Deno.removeSync(path);
    } catch { /* no stale socket */ }
    server = Deno.serve({ path, onListen }, app.fetch);
  } else {
    const m = /^(.*):(\d+)$/.exec(listen);
    if (!m) fail(`--listen expects HOST:PORT or unix:PATH, got '${listen}'`);
    server = Deno.serve(
      { hostname: m[1].replace(/^\[|\]$/g, ""), port: Number(m[2]), onListen },
      app.fetch,
    );
  }
  // SIGINT/SIGTERM: stop taking requests, cancel an outgoing migration and wait for it to
  // end (bounded, in agent.close, which also closes the incoming listener), give open
  // requests and SSE streams (which never end on their own) a short grace, exit 0.
  // A second signal exits at once.
  let stopping = false;
  const stop = async () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    const closed = server.shutdown();
    await agent.close().catch((e) => console.error(`ferry: shutdown: ${(e as Error).message}`));
    await Promise.race([closed, new Promise((r) => setTimeout(r, SHUTDOWN_GRACE_MS))]);
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await server.finished;
}

if (import.meta.main) await main(Deno.args);
