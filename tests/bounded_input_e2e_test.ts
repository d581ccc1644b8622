/**
 * Issue 18 item 3, bounded peer input on a real destination agent: connections that never say
 * what they are hold a small buffer each and at most 64 of them are held (the rest are closed
 * at once; the held ones go after 10 s); once they are gone an honest migration completes.
 */
import assert from "node:assert/strict";
import { type Json, markAttempt, type TestAgent, waitNextEnd } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { HOSTILE_AGENT_ARGS } from "./helpers/hostile_streams.ts";

const FLOOD = 100;
const HELD = 64; // domain/engine/dest_worker.ts MAX_UNIDENTIFIED

Deno.test("bounded input: a flood of silent connections: 64 held, the rest closed at once; then a migration completes", async () => {
  const agents: TestAgent[] = [];
  const conns: Deno.TcpConn[] = [];
  try {
    const [dst, src] = await startLocalAgents(
      (a) => (agents.push(a), a),
      [...HOSTILE_AGENT_ARGS, "--incoming", "tcp:127.0.0.1:0"],
      [...HOSTILE_AGENT_ARGS, "--fill", "random", "--workload", "idle"],
    );
    const port = Number(dst.incomingUri!.split(":").pop());
    let ended = 0;
    for (let i = 0; i < FLOOD; i++) {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      conns.push(c);
      (async () => {
        try {
          await c.read(new Uint8Array(16)); // null (closed) or a reset: either way, gone
        } catch { /* reset or closed here */ }
        ended++;
      })();
    }
    const deadline = Date.now() + 8_000; // the held ones are closed after 10 s
    while (ended < FLOOD - HELD && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 20));
    }
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(ended, FLOOD - HELD, `connections closed at once: ${ended}`);
    for (const c of conns) c.close();
    conns.length = 0;
    // The agent is fine and takes an honest migration.
    await dst.waitStatus(/^setup$/, 15_000);
    await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
    const mark = await markAttempt(dst);
    assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
    assert.equal((await src.waitStatus(/^(completed|failed|cancelled)$/)).status, "completed");
    // Without a return path the source completes once its ~1 MiB stream is in the socket
    // buffers: the destination may not have loaded it yet.
    const arrived = await waitNextEnd(dst, mark);
    assert.equal(arrived.status, "completed", JSON.stringify(arrived));
    assert.deepEqual(
      (await src.api<Json>("GET", "/machine/digest?at=now")).body.blocks,
      (await dst.api<Json>("GET", "/machine/digest?at=now")).body.blocks,
    );
  } finally {
    for (const c of conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    await Promise.all(agents.map((a) => a.stop()));
  }
});
