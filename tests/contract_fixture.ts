/**
 * Test fixture for the contract tests: a real in-process agent (a small idle guest and its
 * vCPU Worker) behind the real app, driven with `app.request()`; closed afterwards.
 *
 * @module
 */
import { Agent, type AgentConfig } from "../domain/agent.ts";
import { parseWorkload } from "../adapters/memory/machine.ts";
import { type AppOptions, createApp } from "../routes/app.ts";

/** Loosely typed JSON for assertions. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** One reply, its body parsed when it is JSON. */
export interface Reply {
  status: number;
  headers: Headers;
  body: Json;
  text: string;
}

/** An in-process agent and a request function over its app. */
export interface InProcess {
  agent: Agent;
  app: ReturnType<typeof createApp>;
  /** Sends `body` as JSON (a string is sent as is) with `content-type: application/json`. */
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<Reply>;
}

/** Parses a response into a Reply. */
export async function replyOf(r: Response): Promise<Reply> {
  const text = await r.text();
  let body: Json = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch { /* not JSON */ }
  return { status: r.status, headers: r.headers, body, text };
}

/** Runs `fn` with a fresh in-process agent (1 MiB idle guest unless `config` says otherwise). */
export async function withAgent(
  fn: (h: InProcess) => Promise<void>,
  config: Partial<AgentConfig> = {},
  options: AppOptions = {},
): Promise<void> {
  const h = await openAgent(config, options);
  try {
    await fn(h);
  } finally {
    await h.agent.close();
  }
}

/** A fresh in-process agent, as {@link withAgent} makes; the caller closes `agent`. */
export async function openAgent(
  config: Partial<AgentConfig> = {},
  options: AppOptions = {},
): Promise<InProcess> {
  const agent = await Agent.create({
    blocks: [{ name: "pc.ram", size: 1 << 20 }],
    fill: "zero",
    workload: parseWorkload("idle"),
    startPaused: false,
    incoming: null,
    ...config,
  });
  const app = createApp(agent, options);
  const request = async (
    method: string,
    path: string,
    body?: unknown,
    headers: Record<string, string> = {},
  ) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === "string" ? body : JSON.stringify(body);
      init.headers = { "content-type": "application/json", ...headers };
    }
    return replyOf(await app.request(path, init));
  };
  return { agent, app, request };
}
