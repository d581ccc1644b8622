/**
 * Starts a real Ferry agent process (Deno.execPath() main.ts) on an ephemeral
 * loopback port, talks to its API, follows its SSE stream, and stops it.
 *
 * @module
 */
import { stopChild } from "./child_stop.ts";
import { backoff } from "./wait.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Loosely typed JSON for assertions. */
// deno-lint-ignore no-explicit-any
export type Json = any;

/** A running agent, in a process of its own or in this one (local_agent.ts). */
export interface TestAgent {
  base: string;
  /** The bound incoming URI (with --incoming), e.g. tcp:127.0.0.1:40123. */
  incomingUri: string | null;
  api<T = Json>(
    method: string,
    path: string,
    body?: unknown,
  ): Promise<{ status: number; body: T; headers: Headers }>;
  /** Polls /migrations/current until the status matches; returns it. */
  waitStatus(pattern: RegExp, timeoutMs?: number): Promise<Json>;
  /** Shuts the agent down as SIGTERM does; safe to call twice. */
  stop(): Promise<void>;
  /** Everything it logged so far. */
  log(): string;
}

/** An agent in a process of its own: it can be signalled, killed and watched exit. */
export interface AgentProcess extends TestAgent {
  /** The agent's process id. */
  pid: number;
  /** Sends `signal` to the agent process (SIGKILL by default); a no-op once it has exited. */
  kill(signal?: Deno.Signal): void;
  /** Resolves with the exit status once the process has exited. */
  exited: Promise<Deno.CommandStatus>;
}

/**
 * Test guests that run QEMU's migration-test loop (`--workload increment`) do it paced at
 * {@link TEST_INCREMENT_RATE} pages per second unless the test names a rate: unpaced, every
 * such vCPU spins a core for the whole test, and on 2 cores those spinning vCPUs cost the
 * suite more CPU than everything else together. Paced, it still rewrites a 16 MiB guest 24
 * times a second (400 MB/s), far faster than any link the tests give it, so what converges and what does
 * not stays the same.
 */
export const TEST_INCREMENT_RATE = 100_000;

/** `args` with every `increment` workload that names no rate paced at TEST_INCREMENT_RATE. */
export function paced(args: string[]): string[] {
  return args.map((a, i) =>
    args[i - 1] === "--workload" && /^increment(,|$)/.test(a) && !/(^|,)rate=/.test(a)
      ? `${a},rate=${TEST_INCREMENT_RATE}`
      : a
  );
}

/**
 * Starts `main.ts` with `args` (Deno run with `denoFlags` too, and `env` added to this
 * process's environment) and waits until it listens. An agent with `--api-tls` gets an https
 * `base`; `client` (its CA and a client certificate) is then what `api()` talks to it with.
 */
export async function startAgent(
  args: string[],
  denoFlags: string[] = [],
  client?: Deno.HttpClient,
  env: Record<string, string> = {},
): Promise<AgentProcess> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", ...denoFlags, MAIN, "--listen", "127.0.0.1:0", ...paced(args)],
    // Test agents keep the digest of RAM as it arrived (opt-in since issue 18), so that a
    // destination's digest compares with the stopped source's; a test may set it to "0".
    env: { FERRY_ARRIVAL_DIGEST: "1", ...env },
    stdout: "null",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  let logText = "";
  const lines = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
  let listening: { addr: string; incoming: string | null; tls?: boolean } | null = null;
  const deadline = Date.now() + 30_000;
  let pending = "";
  while (!listening) {
    if (Date.now() > deadline) throw new Error(`agent did not start: ${logText}`);
    const { value, done } = await lines.read();
    if (done) {
      const s = await child.status;
      throw new Error(`agent exited (code ${s.code}, signal ${s.signal}): ${logText}`);
    }
    logText += value;
    pending += value;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) {
      if (line.includes('"msg":"listening"')) listening = JSON.parse(line);
    }
  }
  // Keep draining stderr so the child never blocks on a full pipe.
  (async () => {
    for (;;) {
      const { value, done } = await lines.read().catch(() => ({ value: "", done: true }));
      if (done) break;
      logText += value;
    }
  })();
  const base = `${listening.tls ? "https" : "http"}://${listening.addr}`;
  let exit: Deno.CommandStatus | null = null;
  let expectExit = false;
  child.status.then((s) => (exit = s));
  const api = agentApi(base, client, () => {
    if (exit !== null && !expectExit) {
      // Its port may already belong to another process: say what happened instead.
      const e = exit as Deno.CommandStatus;
      throw new Error(
        `agent ${base} exited unexpectedly (code ${e.code}, signal ${e.signal}); ` +
          `log tail:\n${logText.slice(-3000)}`,
      );
    }
  });
  let stopped = false;
  return {
    base,
    incomingUri: listening.incoming,
    pid: child.pid,
    kill(signal: Deno.Signal = "SIGKILL") {
      expectExit = true;
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    },
    exited: child.status,
    api,
    waitStatus: (pattern, timeoutMs) => waitStatus(api, pattern, timeoutMs),
    async stop() {
      if (stopped) return;
      stopped = true;
      expectExit = true;
      await stopChild(child, 3000);
      await lines.cancel().catch(() => {});
    },
    log: () => logText,
  };
}

/** Hands an agent to whoever stops it afterwards; returns it. */
export type Track = <A extends TestAgent>(a: A) => A;

/** Runs `fn` with a tracker; every agent it tracks is stopped afterwards, whatever happens. */
export async function withAgents(fn: (track: Track) => Promise<void>): Promise<void> {
  const agents: TestAgent[] = [];
  try {
    await fn((a) => (agents.push(a), a));
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

/**
 * Starts one agent per argument list, all at once, and hands each to `track` as soon as it
 * runs, so none is left behind when another fails to start. Resolves in argument order.
 */
export async function startAgents(
  track: Track,
  ...argLists: string[][]
): Promise<AgentProcess[]> {
  return await startAll(track, argLists.map((args) => () => startAgent(args)));
}

/** Runs every start at once, tracking each agent as it runs; resolves in order or throws. */
export async function startAll<A extends TestAgent>(
  track: Track,
  starts: (() => Promise<A>)[],
): Promise<A[]> {
  const started = await Promise.allSettled(starts.map((start) => start().then(track)));
  for (const s of started) if (s.status === "rejected") throw s.reason;
  return started.map((s) => (s as PromiseFulfilledResult<A>).value);
}

/**
 * The API client of an agent at `base`: `guard` runs before each request (it throws when
 * the agent is known to be gone).
 */
export function agentApi(
  base: string,
  client: Deno.HttpClient | undefined,
  guard: () => void = () => {},
): TestAgent["api"] {
  return async <T>(method: string, path: string, body?: unknown) => {
    guard();
    const r = await fetch(base + path, {
      client,
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: (text ? JSON.parse(text) : null) as T, headers: r.headers };
  };
}

/** Which incoming attempt a destination shows now: {@link waitNextEnd} waits past it. */
export interface AttemptMark {
  id: string;
  status: string;
}

/**
 * What {@link markAttempt} and {@link waitNextEnd} need of a destination: its API (a
 * {@link TestAgent}, or an agent in a network namespace, tests/helpers/netns.ts).
 */
export interface IncomingApi {
  api(method: string, path: string): Promise<{ body: Json }>;
  base?: string;
}

/**
 * The attempt `dst`'s /migrations/current shows now; take it before the source starts, once
 * any attempt before has ended (an attempt still active when marked is not told apart).
 */
export async function markAttempt(dst: IncomingApi): Promise<AttemptMark> {
  const info = (await dst.api("GET", "/migrations/current")).body;
  return { id: info["x-id"], status: info.status };
}

/**
 * Waits until `dst`'s incoming attempt after `mark` ends (completed or failed); returns its
 * record. A destination shows its failed attempt until the next stream's first bytes are
 * read, and a source without a return path may say `completed` before that: a failed record
 * that is `mark` itself is the attempt before, not this one.
 */
export async function waitNextEnd(
  dst: IncomingApi,
  mark: AttemptMark,
  timeoutMs = 60_000,
): Promise<Json> {
  const stale = mark.status === "failed" || mark.status === "completed";
  const end = Date.now() + timeoutMs;
  const pause = backoff();
  let last: Json = {};
  while (Date.now() < end) {
    last = (await dst.api("GET", "/migrations/current")).body;
    const ended = /^(completed|failed)$/.test(String(last.status));
    if (ended && !(stale && last["x-id"] === mark.id)) return last;
    await new Promise((r) => setTimeout(r, pause()));
  }
  throw new Error(
    `the attempt after ${JSON.stringify(mark)} never ended on ${dst.base ?? "its agent"}: last ${
      JSON.stringify(last)
    }`,
  );
}

/** Polls `api`'s /migrations/current until its status matches `pattern`; returns it. */
export async function waitStatus(
  api: TestAgent["api"],
  pattern: RegExp,
  timeoutMs = 60_000,
): Promise<Json> {
  const end = Date.now() + timeoutMs;
  const pause = backoff();
  let last: Json = {};
  while (Date.now() < end) {
    last = (await api<Json>("GET", "/migrations/current")).body;
    if (pattern.test(String(last.status))) return last;
    await new Promise((r) => setTimeout(r, pause()));
  }
  throw new Error(`status ${JSON.stringify(last)} never matched ${pattern}`);
}
