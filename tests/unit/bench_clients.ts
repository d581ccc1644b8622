/**
 * The load scenario's lean clients (bench/http_load.ts, bench/sse_follower.ts) must count
 * what a user would: the bench reports "no error, no lost event" from them. Here they run
 * against the real app served over a real socket: every event arrives once, in order, with
 * MIGRATION statuses read; the chunked body is undone whatever the read boundaries; the GET
 * generator keeps its rate and counts a non-200 answer as an error.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { withAgent } from "../contract_fixture.ts";
import { Dechunker, follow } from "../../bench/sse_follower.ts";
import { httpLoad, type HttpLoadResult } from "../../bench/http_load.ts";
import { bounded } from "../../bench/kit.ts";
import { waitFor } from "../../harness/wait.ts";
import type { EventBus } from "../../domain/event_bus.ts";
import type { Agent } from "../../domain/agent.ts";

/** The agent's bus without its event catalogue: these tests publish made-up events. */
function anyEvents(agent: Agent): EventBus {
  return agent.events as unknown as EventBus;
}

const enc = new TextEncoder();
const dec = new TextDecoder();

Deno.test("dechunker: any split of a chunked body gives back the body", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  fc.assert(
    fc.property(
      fc.array(fc.string({ minLength: 1, maxLength: 40 }), { maxLength: 8 }),
      fc.array(fc.integer({ min: 1, max: 16 }), { minLength: 1, maxLength: 8 }),
      (parts, cuts) => {
        const wire = enc.encode(
          parts.map((p) => `${enc.encode(p).length.toString(16)}\r\n${p}\r\n`).join("") +
            "0\r\n\r\n",
        );
        const d = new Dechunker();
        const out: Uint8Array[] = [];
        let at = 0;
        for (let i = 0; at < wire.length; i++) {
          const n = cuts[i % cuts.length];
          out.push(...d.push(wire.subarray(at, at + n)));
          at += n;
        }
        const joined = new Uint8Array(out.reduce((n, b) => n + b.length, 0));
        let o = 0;
        for (const b of out) (joined.set(b, o), o += b.length);
        assert.equal(dec.decode(joined), parts.join(""));
      },
    ),
    { seed },
  );
});

Deno.test("dechunker: a malformed size line is an error, not a guess", () => {
  assert.throws(() => new Dechunker().push(enc.encode("zz\r\nabc\r\n")), /chunk size/);
});

Deno.test("SSE follower: a character split between two chunks (and two reads) arrives whole, per stream", async () => {
  // Two streams whose bodies each split an 'é' (0xC3 0xA9) between two HTTP chunks sent
  // apart, so that each follower reads them apart: its decoder must keep the first byte for
  // the second, neither losing it to the chunk-size line nor handing it to the other stream.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const base = `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
  const chunkOf = (bytes: Uint8Array) => {
    const out = new Uint8Array([...enc.encode(`${bytes.length.toString(16)}\r\n`), ...bytes]);
    return new Uint8Array([...out, 13, 10]);
  };
  const first = chunkOf(new Uint8Array([...enc.encode("id: 1\ndata: "), 0xc3]));
  const second = chunkOf(new Uint8Array([0xa9, ...enc.encode("\n\nid: 2\ndata: x\n\n")]));
  const conns: Deno.Conn[] = [];
  const served = (async () => {
    for (let i = 0; i < 2; i++) {
      const c = await listener.accept();
      conns.push(c);
      await c.read(new Uint8Array(4096)); // the request
      await c.write(enc.encode(
        "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
      ));
      await c.write(chunkOf(enc.encode(": open\n\n")));
    }
  })();
  const followers = await Promise.all([follow(base), follow(base)]);
  try {
    await served;
    for (const c of conns) await c.write(first);
    await new Promise((r) => setTimeout(r, 50)); // read apart from what follows
    for (const c of conns) await c.write(second);
    await waitFor("both followers to get both events", () => {
      return followers.every((f) => f.ids.length >= 2 || f.ended);
    });
    for (const f of followers) {
      assert.deepEqual(f.ids, [1, 2]);
      assert.equal(f.ended, false);
    }
  } finally {
    await Promise.all(followers.map((f) => f.close()));
    for (const c of conns) c.close();
    listener.close();
  }
});

Deno.test("SSE follower and GET load against a served agent", async () => {
  await withAgent(async ({ app, agent }) => {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const followers: Awaited<ReturnType<typeof follow>>[] = [];
    const loads: (() => Promise<HttpLoadResult>)[] = [];
    try {
      followers.push(
        ...await bounded(
          Promise.all([follow(base), follow(base), follow(base)]),
          30_000,
          "three event streams to open",
        ),
      );
      const ids: number[] = [];
      for (let i = 0; i < 50; i++) {
        ids.push(anyEvents(agent).publish("test", { i, pad: "é".repeat(i * 40) }).id);
        if (i % 7 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      for (const status of ["setup", "active", "completed"]) {
        ids.push(anyEvents(agent).publish("MIGRATION", { status, side: "source", id: "m1" }).id);
      }
      const loadStart = performance.now();
      loads.push(httpLoad(base, "/migrations/current", 200), httpLoad(base, "/no/such/path", 100));
      await waitFor(
        "every follower to get every event",
        () => followers.every((f) => f.ids.length >= ids.length),
      );
      await new Promise((r) => setTimeout(r, 300)); // the load runs a while
      const [ok, missing] = await bounded(
        Promise.all(loads.splice(0).map((stop) => stop())),
        30_000,
        "the GET loads to stop (their requests answered)",
      );
      for (const f of followers) {
        assert.deepEqual(f.ids, ids, "every event once, in order");
        assert.deepEqual(f.statuses.get("m1"), ["setup", "active", "completed"]);
        assert.equal(f.ended, false);
      }
      assert.ok(ok.sent > 0);
      assert.equal(ok.errors, 0);
      assert.equal(ok.latencies.length, ok.sent);
      assert.equal(ok.sentAt.length, ok.sent);
      assert.ok(ok.sentAt.every((t, i) => i === 0 || t >= ok.sentAt[i - 1]), "send times in order");
      // Paced, not a burst: request i goes out no earlier than its turn at 200/s (a busy machine
      // only makes it later).
      const early = ok.sentAt.findIndex((t, i) => t - loadStart < (i + 1) * 5 - 0.5);
      assert.equal(early, -1, `request ${early} went out ahead of its turn`);
      assert.ok(missing.sent > 0);
      assert.equal(missing.errors, missing.sent, "a 404 answer counts as an error");
    } finally {
      // Whatever failed: the streams and the load end first, or the shutdown would wait on them.
      await bounded(Promise.all(loads.map((stop) => stop())), 30_000, "the GET loads to stop");
      await Promise.all(followers.map((f) => f.close()));
      await bounded(server.shutdown(), 30_000, "the server to shut down");
    }
  });
});

Deno.test("SSE follower: waitStatus resolves at the first matching MIGRATION status, seen or to come", async () => {
  await withAgent(async ({ app, agent }) => {
    const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
    const base = `http://127.0.0.1:${server.addr.port}`;
    const f = await bounded(follow(base), 30_000, "the event stream to open");
    try {
      const publish = (status: string) =>
        anyEvents(agent).publish("MIGRATION", { status, side: "source", id: "m1" });
      publish("setup");
      let settled = false;
      const ended = f.waitStatus(/^(completed|failed)$/, 30_000);
      ended.finally(() => (settled = true));
      publish("active");
      await f.waitStatus(/^active$/, 30_000);
      assert.equal(settled, false, "no end was published yet");
      const before = performance.timeOrigin + performance.now();
      publish("completed");
      const done = await ended;
      assert.equal(done.status, "completed");
      assert.ok(done.at >= before, "the time the event was read");
      // A status seen before the wait began counts at once.
      assert.equal((await f.waitStatus(/^setup$/, 30_000)).status, "setup");
      // Once the stream is closed, a wait for what never came fails instead of hanging.
      const never = f.waitStatus(/^cancelled$/, 30_000);
      await f.close();
      await assert.rejects(never, /closed/);
    } finally {
      await f.close();
      await bounded(server.shutdown(), 30_000, "the server to shut down");
    }
  });
});
