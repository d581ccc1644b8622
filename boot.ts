/**
 * Booting an agent from checked start options: the guest and its agent, the metrics that
 * follow its events, the API app, and the server it listens on, announced with the
 * `listening` log line. main.ts runs it for the command line (and adds the signals); tests
 * run it in their own process to host agents that need no process of their own.
 *
 * @module
 */
import { Agent } from "./domain/agent.ts";
import { createLogger, migrationEventLogger } from "./domain/log.ts";
import type { StartOptions } from "./cli.ts";
import { createApp } from "./routes/app.ts";
import { FerryMetrics } from "./routes/metrics.ts";
import { type ApiServer, serveApi } from "./routes/serve.ts";

/** How long a shutdown waits for open HTTP requests and SSE streams after the agent closed. */
const SHUTDOWN_GRACE_MS = 1500;

/** A booted agent serving its API. */
export interface BootedAgent {
  agent: Agent;
  server: ApiServer;
  /** Where the API listens (`host:port` or `unix:PATH`), as the `listening` line says. */
  listening: { addr: string; tls: boolean };
  /**
   * Stops taking requests, cancels an outgoing migration and waits for it to end (bounded,
   * in agent.close, which also closes the incoming listener), then gives open requests and
   * SSE streams (which never end on their own) a short grace. Never throws.
   */
  shutdown(): Promise<void>;
}

/**
 * Builds the agent `options` describe and serves its API; log lines go to `write` (stderr
 * unless told otherwise). Throws an Error whose message is for the user when the guest
 * cannot be built or the API cannot listen; nothing is left running then.
 */
export async function bootAgent(
  options: StartOptions,
  write?: (line: string) => void,
): Promise<BootedAgent> {
  const logger = createLogger(options.logLevel, write);
  const agent = await Agent.create({ ...options.agent, logger });
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
  const said: { listening?: BootedAgent["listening"] } = {};
  try {
    server = await serveApi(options.listen, options.apiTls, app.fetch, (where) => {
      said.listening = where;
      logger.announce("listening", {
        addr: where.addr,
        ...(where.tls ? { tls: true } : {}),
        incoming: agent.incomingUri,
      });
    });
  } catch (e) {
    await agent.close().catch(() => {});
    throw e;
  }
  const shutdown = async () => {
    const closed = server.shutdown();
    await agent.close().catch((e) => console.error(`ferry: shutdown: ${(e as Error).message}`));
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([closed, new Promise((r) => timer = setTimeout(r, SHUTDOWN_GRACE_MS))]);
    clearTimeout(timer);
  };
  // serveApi resolves once it listens, its onListen called.
  if (said.listening === undefined) {
    await shutdown();
    throw new Error("the API server started without saying where it listens");
  }
  return { agent, server, listening: said.listening, shutdown };
}
