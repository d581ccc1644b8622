/**
 * Test helper: an agent hosted in the test's own process. It is booted by boot.ts from the
 * same command line, through the same cli.ts, as `main.ts` boots one, and serves its API on a
 * real loopback port; its migrations go over real sockets from its own Workers. What it
 * cannot be is signalled, killed or frozen: tests that need that start a process
 * (agent_process.ts). Starting a process costs ~0.4 CPU-s (Deno, the agent's modules, a
 * second copy of every page it touches), which on 2 cores made a fifth of the suite's time.
 *
 * @module
 */
import { bootAgent, type BootedAgent } from "../../boot.ts";
import { parseCommandLine } from "../../cli.ts";
import {
  agentApi,
  paced,
  startAll,
  type TestAgent,
  type Track,
  waitStatus,
} from "../../harness/agent_process.ts";

/** What a local agent is started with besides its command line. */
export interface LocalAgentOptions {
  /** FERRY_* variables as the agent's environment would give them (added to this one's). */
  env?: Record<string, string>;
  /** The client `api()` talks to an `--api-tls` agent with. */
  client?: Deno.HttpClient;
}

/**
 * Boots an agent from `args` (with `--listen 127.0.0.1:0` first, paced increment workloads
 * and FERRY_ARRIVAL_DIGEST=1, as agent_process.ts starts one) in this process; resolves once it
 * listens. A command line it cannot start with rejects with the agent's message.
 */
export async function startLocalAgent(
  args: string[],
  options: LocalAgentOptions = {},
): Promise<TestAgent> {
  const env: Record<string, string> = { FERRY_ARRIVAL_DIGEST: "1", ...options.env };
  let logText = "";
  let booted: BootedAgent;
  try {
    const start = await parseCommandLine(
      ["--listen", "127.0.0.1:0", ...paced(args)],
      (name) => name in env ? env[name] : Deno.env.get(name),
    );
    booted = await bootAgent(start, (line) => logText += line + "\n");
  } catch (e) {
    throw new Error(`agent did not start: ${(e as Error).message}`);
  }
  const { addr, tls } = booted.listening;
  const base = `${tls ? "https" : "http"}://${addr}`;
  let stopped: Promise<void> | null = null;
  const api = agentApi(base, options.client);
  return {
    base,
    incomingUri: booted.agent.incomingUri,
    api,
    waitStatus: (pattern, timeoutMs) => waitStatus(api, pattern, timeoutMs),
    stop: () => stopped ??= booted.shutdown(),
    log: () => logText,
  };
}

/**
 * Starts one local agent per argument list, all at once, and hands each to `track` as soon
 * as it runs, so none is left behind when another fails to start. Resolves in argument order.
 */
export async function startLocalAgents(
  track: Track,
  ...argLists: string[][]
): Promise<TestAgent[]> {
  return await startAll(track, argLists.map((args) => () => startLocalAgent(args)));
}
