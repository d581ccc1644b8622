/**
 * Test helper for the postcopy tests with real agents: a pair whose guest precopy cannot
 * migrate (hardPair), and the MIGRATION statuses an SSE recording saw (statuses, untilStatus).
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Json, type Track } from "../../harness/agent_process.ts";
import { startLocalAgents } from "./local_agent.ts";
import type { SseRecorder } from "./sse.ts";

/** The MIGRATION statuses `rec` saw for `side`, in order. */
export function statuses(rec: SseRecorder, side: string): string[] {
  return rec.events.filter((e) => e.event === "MIGRATION" && (e.data as Json).side === side)
    .map((e) => (e.data as Json).status);
}

/** Waits until `rec` has seen `side` reach `status`. */
export function untilStatus(rec: SseRecorder, side: string, status: string) {
  return rec.waitFor((e) =>
    e.event === "MIGRATION" && (e.data as Json).side === side && (e.data as Json).status === status
  );
}

/**
 * A 16 MiB guest whose vCPU increments its RAM (from 1 MiB on) at full speed, against a
 * 32 MiB/s link and a 20 ms downtime limit (0.64 MiB may be left for the last pass): precopy
 * never converges. `narrow`: 32 MiB, the vCPU increments only 1..3 MiB and the link carries
 * 4 MiB/s, so a postcopy started at once begins inside the first pass, and, once the guest
 * runs on the destination, it pulls only those 2 MiB by page requests: the rest comes in the
 * background, which a test slows with max-postcopy-bandwidth (about a run of pages per 100 ms
 * window here: a second or two for the 30 MiB).
 */
export async function hardPair(
  track: Track,
  narrow = false,
  hugePages = "auto",
) {
  const ram = narrow ? "32M" : "16M";
  const pages = ["--huge-pages", hugePages];
  const [dst, src] = await startLocalAgents(
    track,
    ["--ram", ram, "--incoming", "tcp:127.0.0.1:0", ...pages],
    [
      "--ram",
      ram,
      "--fill",
      "random",
      "--workload",
      narrow ? "increment,start=1M,end=3M" : "increment",
      "-S",
      ...pages,
    ],
  );
  await src.api("PATCH", "/parameters", {
    "max-bandwidth": (narrow ? 4 : 32) << 20,
    "downtime-limit": 20,
    "max-postcopy-bandwidth": 32 << 20,
  });
  assert.equal((await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
  await dst.api("PATCH", "/capabilities", { "postcopy-blocktime": true });
  // Started paused (-S): the vCPU spins from here on, not while the agents start.
  assert.equal((await src.api("POST", "/machine/cont")).status, 202);
  return { src, dst };
}
