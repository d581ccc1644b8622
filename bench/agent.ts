/**
 * The bench's handle on a real Ferry agent process (the tests' agent helper, started with
 * the start task's V8 flags): its API, pid (for CPU accounting), log, and stop.
 *
 * @module
 */

import { startAgent as startAgentProcess } from "../harness/agent_process.ts";

/** Loosely typed JSON as the agent answers it. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** A running agent process. */
export interface BenchAgent {
  /** `http://127.0.0.1:PORT` of its API. */
  base: string;
  /** The bound incoming URI (destinations only). */
  incomingUri: string | null;
  /** Process id of the agent. */
  pid: number;
  /** Calls the API; the body is parsed JSON (or null). */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>;
  /** Stops the process (SIGTERM, then SIGKILL after 3 s); safe to call twice. */
  stop(): Promise<void>;
  /** Everything it wrote to stderr so far. */
  log(): string;
}

/** V8 flags agents run with (as in the `start` task). */
export const AGENT_V8_FLAGS = "--v8-flags=--max-semi-space-size=1";

/** Starts an agent with `args` (after `--listen 127.0.0.1:0`), as `deno task start` would, and waits until it listens. */
export function startAgent(args: string[]): Promise<BenchAgent> {
  return startAgentProcess(args, [AGENT_V8_FLAGS]);
}

/**
 * Runs `fn` with a tracker; every agent it tracks is stopped afterwards, whatever happens
 * (also one still starting when `fn` fails).
 */
export async function withAgents<T>(
  fn: (track: (a: Promise<BenchAgent>) => Promise<BenchAgent>) => Promise<T>,
): Promise<T> {
  const starting: Promise<BenchAgent>[] = [];
  try {
    return await fn((a) => (starting.push(a), a));
  } finally {
    const settled = await Promise.allSettled(starting);
    await Promise.all(settled.map((s) => s.status === "fulfilled" ? s.value.stop() : null));
  }
}
