/**
 * The bench's handle on a real Ferry agent process: spawns `main.ts` on an ephemeral
 * loopback port, waits for its "listening" log line, exposes its pid (for CPU accounting)
 * and a small JSON API client, and stops it.
 *
 * @module
 */

const MAIN = new URL("../main.ts", import.meta.url).pathname;

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
export async function startAgent(args: string[]): Promise<BenchAgent> {
  const child = new Deno.Command(Deno.execPath(), {
    // The same V8 flags as `deno task start` (a small young generation: see deno.json).
    args: ["run", "-A", AGENT_V8_FLAGS, MAIN, "--listen", "127.0.0.1:0", ...args],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGTERM");
    } catch { /* already gone */ }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 3000);
    await child.status;
    clearTimeout(t);
  };
  let text = "";
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let ready: { addr: string; incoming: string | null } | null = null;
  try {
    const deadline = setTimeout(() => stop(), 60_000);
    let pending = "";
    while (!ready) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`agent ${args.join(" ")} exited before listening: ${text}`);
      text += value;
      pending += value;
      const parts = pending.split("\n");
      pending = parts.pop() ?? "";
      for (const line of parts) if (line.includes('"msg":"listening"')) ready = JSON.parse(line);
    }
    clearTimeout(deadline);
  } catch (e) {
    await stop();
    throw e;
  }
  // Keep draining stderr so the agent never blocks on a full pipe.
  (async () => {
    for (;;) {
      const r = await lines.read().catch(() => ({ value: "", done: true }));
      if (r.done) break;
      text += r.value;
    }
  })();
  const base = `http://${ready.addr}`;
  return {
    base,
    incomingUri: ready.incoming,
    pid: child.pid,
    async api(method, path, body) {
      const r = await fetch(base + path, {
        method,
        headers: body === undefined ? {} : { "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
      const t = await r.text();
      return { status: r.status, body: t ? JSON.parse(t) : null };
    },
    stop,
    log: () => text,
  };
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
