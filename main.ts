/**
 * Ferry agent: parses the command line (cli.ts, see contract.md), builds the agent, serves
 * the API on TCP or a unix socket (over TLS with `--api-tls`), and shuts down cleanly on
 * SIGINT/SIGTERM.
 *
 * @module
 */
import { Agent } from "./domain/agent.ts";
import { createLogger, migrationEventLogger } from "./domain/log.ts";
import { parseCommandLine, type StartOptions, UsageError } from "./cli.ts";
import { HelpRequested, USAGE } from "./cli_usage.ts";
import { createApp } from "./routes/app.ts";
import { FerryMetrics } from "./routes/metrics.ts";
import { type ApiServer, serveApi } from "./routes/serve.ts";

/** How long a shutdown waits for open HTTP requests and SSE streams after the agent closed. */
const SHUTDOWN_GRACE_MS = 1500;

function fail(message: string): never {
  console.error(`ferry: ${message}`);
  Deno.exit(1);
}

/** Starts an agent from `args`; resolves when it has shut down. */
export async function main(args: string[]): Promise<void> {
  let options: StartOptions;
  try {
    options = await parseCommandLine(args);
  } catch (e) {
    // --help and command lines it cannot start with: the usage text, exit status 2.
    if (e instanceof HelpRequested) {
      console.log(USAGE);
      Deno.exit(2);
    }
    if (e instanceof UsageError) {
      console.error(`ferry: ${e.message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    fail((e as Error).message);
  }
  const logger = createLogger(options.logLevel);
  let agent: Agent;
  try {
    agent = await Agent.create({ ...options.agent, logger });
  } catch (e) {
    fail((e as Error).message);
  }
  const metrics = new FerryMetrics(() => agent);
  metrics.follow(agent.events, migrationEventLogger(logger, (id) => agent.get(id)["error-desc"]));
  const app = createApp(agent, {
    apiToken: options.apiToken,
    metrics,
    logger,
    hosts: options.hosts,
    maxSseSubscribers: options.maxSseSubscribers,
  });
  let server: ApiServer;
  try {
    server = await serveApi(
      options.listen,
      options.apiTls,
      app.fetch,
      ({ addr, tls }) =>
        logger.announce("listening", {
          addr,
          ...(tls ? { tls: true } : {}),
          incoming: agent.incomingUri,
        }),
    );
  } catch (e) {
    await agent.close().catch(() => {});
    fail((e as Error).message);
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
