/**
 * Test helper: what the COLO end-to-end tests ask of a pair of real agents: their COLO status,
 * guest and counters, entering COLO, waiting for checkpoints and guest progress, and the guest's
 * output records as clients see them.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent } from "../../harness/agent_process.ts";
import { recordEvents, type SseRecorder } from "./sse.ts";
import { waitFor } from "../../harness/wait.ts";

/** A guest for COLO tests. */
export const GUEST = ["--ram", "32M"];
/** A short link timeout, so that a silent peer is held for within the test. */
export const ENV = { FERRY_LINK_TIMEOUT_MS: "3000" };
/** An incoming agent for GUEST. */
export const INCOMING = [...GUEST, "--incoming", "tcp:127.0.0.1:0"];

export async function colo(a: TestAgent): Promise<Json> {
  return (await a.api("GET", "/colo")).body;
}

export async function machine(a: TestAgent): Promise<Json> {
  return (await a.api("GET", "/machine")).body;
}

export async function info(a: TestAgent): Promise<Json> {
  return (await a.api("GET", "/migrations/current")).body;
}

/** Waits until the guest of `a` wrote pages beyond what it had written when called. */
export async function progresses(a: TestAgent, who: string): Promise<void> {
  const before = (await machine(a)).workload["pages-written"];
  await waitFor(
    `${who}'s guest to write beyond ${before} pages`,
    async () => (await machine(a)).workload["pages-written"] > before,
  );
}

/** Stops `a`'s guest and checks QEMU's increment pattern over its RAM. */
export async function incrementOk(a: TestAgent): Promise<void> {
  assert.equal((await a.api("POST", "/machine/stop")).status, 202);
  const d = (await a.api("GET", "/machine/digest?at=now")).body;
  assert.equal(d["x-increment-check"].ok, true, JSON.stringify(d["x-increment-check"]));
  assert.equal((await a.api("POST", "/machine/cont")).status, 202);
}

/** x-colo on both, a 200 ms checkpoint delay; migrate (to `uri`); both reach colo. */
export async function enterColo(
  p: TestAgent,
  s: TestAgent,
  uri = s.incomingUri,
): Promise<void> {
  for (const a of [p, s]) {
    const r = await a.api("PATCH", "/capabilities", { "x-colo": true });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await p.api("PATCH", "/parameters", {
    "x-checkpoint-delay": 200,
    "max-bandwidth": 10 * 1024 ** 3,
  });
  assert.equal((await p.api("POST", "/migrations", { uri })).status, 202);
  assert.equal((await p.waitStatus(/^(colo|completed|failed)$/)).status, "colo");
  assert.equal((await s.waitStatus(/^(colo|completed|failed)$/)).status, "colo");
  // The mode follows the status by a message from the data path (colo_state.ts).
  await waitFor("GET /colo: modes primary and secondary", async () => {
    return (await colo(p)).mode === "primary" && (await colo(s)).mode === "secondary";
  });
}

/** Waits until the checkpoint counters of `p` say at least `n` were taken; returns them. */
export function checkpoints(p: TestAgent, n: number): Promise<Json> {
  return waitFor(`${n} checkpoints`, async () => {
    const c = (await info(p))["x-colo"];
    return c && c.checkpoints >= n ? c : undefined;
  });
}

/** The output records a recorder of `GET /machine/output` received, by seq (text). */
export function outputs(r: SseRecorder): Map<number, string> {
  return new Map(r.events.map((e) => [(e.data as Json).seq, (e.data as Json).text]));
}

/** The output records `a` keeps, once it wrote record `atLeast`, by seq. */
export async function outputOf(a: TestAgent, atLeast: number): Promise<Map<number, string>> {
  const r = await recordEvents(a.base, undefined, "/machine/output");
  try {
    await r.waitFor((e) => Number(e.id) >= atLeast);
    const seqs = r.events.map((e) => Number(e.id));
    assert.deepEqual(seqs, [...new Set(seqs)].sort((x, y) => x - y), "no record twice");
    return outputs(r);
  } finally {
    await r.close();
  }
}

/**
 * Waits until the secondary `s` keeps every record of `received` (what a client got from the
 * primary), equal, and (`then`: its guest went on with the next seq) every seq from 1 to one
 * past them. Fails naming the records it lacks or has different.
 */
export async function holdsEvery(
  s: TestAgent,
  received: Map<number, string>,
  then = false,
): Promise<void> {
  assert.ok(received.size > 0, "a client got records from the primary");
  const last = Math.max(...received.keys());
  const deadline = performance.now() + 30_000;
  for (;;) {
    const theirs = await outputOf(s, then ? last + 1 : last);
    const wrong = [...received].filter(([seq, text]) => theirs.get(seq) !== text);
    if (wrong.length === 0) {
      for (let seq = 1; then && seq <= last + 1; seq++) assert.ok(theirs.has(seq), `record ${seq}`);
      return;
    }
    if (performance.now() > deadline) {
      assert.fail(
        `the secondary lacks or differs at ${wrong.length} of the ${received.size} records a ` +
          `client got from the primary: ${
            wrong.slice(0, 3).map(([seq, text]) =>
              `record ${seq}: ${JSON.stringify(theirs.get(seq))}, expected ${JSON.stringify(text)}`
            ).join("; ")
          }`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function exitSeen(events: SseRecorder, mode: string, reason: string): Promise<unknown> {
  return events.waitFor((e) =>
    e.event === "COLO_EXIT" && (e.data as Json).mode === mode &&
    (e.data as Json).reason === reason
  );
}
