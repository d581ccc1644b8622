/**
 * Small steps the issue 4 and 5 scenarios share: setting capabilities and parameters (a
 * refusal is a crash, not a figure), starting a migration, waiting for a status, and reading
 * the final MigrationInfo once its counters are in place.
 *
 * @module
 */
import type { BenchAgent, Json } from "./agent.ts";
import { pollFor } from "./poller.ts";
import { follow } from "./sse_follower.ts";
import { ferryClient } from "../sdk/client.ts";

/** Terminal statuses of a migration. */
export const TERMINAL = /^(completed|failed|cancelled)$/;
/** 1 MiB, for sizes and bandwidths. */
export const MIB = 2 ** 20;
/** The guest page size. */
export const PAGE = 4096;
/** Issue 17: a converging run's downtime may exceed downtime-limit by at most this factor. */
export const DOWNTIME_SLACK = 1.1;

/** PATCHes `/capabilities` or `/parameters`; throws on anything but 200. */
export async function patch(
  agent: BenchAgent,
  path: "/capabilities" | "/parameters",
  body: Record<string, unknown>,
): Promise<void> {
  const r = await agent.api("PATCH", path, body);
  if (r.status !== 200) {
    throw new Error(`PATCH ${path} ${JSON.stringify(body)}: ${r.status} ${JSON.stringify(r.body)}`);
  }
}

/** POST /migrations to `uri`; throws unless accepted. */
export async function migrate(src: BenchAgent, uri: string): Promise<void> {
  const r = await ferryClient({ baseUrl: src.base }).POST("/migrations", { body: { uri } });
  if (r.response.status !== 202) {
    throw new Error(`POST /migrations: ${r.response.status} ${JSON.stringify(r.error)}`);
  }
}

/**
 * Starts the migration and follows both agents' event streams until each saw the migration end
 * (else throws); returns when each did (wall-clock ms).
 *
 * Why not poll: on a 2-core host the two data paths keep both cores busy, and every GET costs
 * the source's main thread (and the asking process) CPU the data path then waits for: a fresh
 * agent's first GETs run its HTTP stack uncompiled, ~1 ms each. Measured 2026-12-07 (1 GiB
 * random idle guest over loopback TCP, 8 alternating rounds, the same code): asked 20 times a
 * second, median 5.68 GB/s (4.86–5.87); followed on its event stream, 6.00 (5.74–6.03); the
 * raw pair then 6.55. A raw pair has no one asking; neither does a migration a figure judges.
 */
export async function migrateAndFollow(
  src: BenchAgent,
  dst: BenchAgent,
  uri: string,
): Promise<{ sourceAt: number; destAt: number }> {
  const [s, d] = await Promise.all([follow(src.base), follow(dst.base)]);
  try {
    await migrate(src, uri);
    const source = await s.waitStatus(TERMINAL, 60_000);
    if (source.status !== "completed") throw new Error(`migration ended ${source.status}`);
    const dest = await d.waitStatus(TERMINAL, 10_000);
    if (dest.status !== "completed") throw new Error(`destination ended ${dest.status}`);
    return { sourceAt: source.at, destAt: dest.at };
  } finally {
    await Promise.all([s.close(), d.close()]);
  }
}

/** GET /migrations/current. */
export async function current(agent: BenchAgent): Promise<Json> {
  return (await ferryClient({ baseUrl: agent.base }).GET("/migrations/current")).data;
}

/** Polls `/migrations/current` every `intervalMs` until `check` holds; throws after `timeoutMs`. */
export function waitInfo(
  agent: BenchAgent,
  check: (info: Json) => boolean,
  timeoutMs: number,
  intervalMs = 20,
): Promise<Json> {
  return pollFor(agent.base, "/migrations/current", check, timeoutMs, intervalMs);
}

/**
 * The final info of a migration that ended: `completed` with total-time set on a source (a GET
 * can show `completed` before the last counters are written), or `cancelled`/`failed` as it is.
 */
export function finalInfo(agent: BenchAgent, timeoutMs: number): Promise<Json> {
  return waitInfo(
    agent,
    (b) =>
      TERMINAL.test(b.status) &&
      (b.status !== "completed" || b["x-side"] !== "source" || b["total-time"] > 0),
    timeoutMs,
  );
}

/** Like {@link finalInfo}, but anything other than `completed` is an error. */
export async function completedInfo(agent: BenchAgent, timeoutMs: number): Promise<Json> {
  const info = await finalInfo(agent, timeoutMs);
  if (info.status !== "completed") {
    throw new Error(`migration ended ${info.status}: ${info["error-desc"] ?? ""}`);
  }
  return info;
}

/** Cancels the source's migration unless it already ended; returns its final info. */
export async function cancelAndSettle(src: BenchAgent): Promise<Json> {
  const now = await current(src);
  if (!TERMINAL.test(now.status)) await src.api("POST", "/migrations/current/cancel");
  return await finalInfo(src, 15_000);
}

/** ram.transferred / (total-time − setup-time) of a completed source, bytes per second. */
export function engineBytesPerSec(info: Json): number {
  return info.ram.transferred / ((info["total-time"] - info["setup-time"]) / 1000);
}

/** `p`, or an error naming `what` after `ms`. */
export async function bounded<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
