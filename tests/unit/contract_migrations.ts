/**
 * Issue 3, item 4: migrations are resources (ids, Location, a bounded newest-first list,
 * GET by id), `Idempotency-Key` replays without starting anything, and `?dry-run=true`
 * reports every problem without starting anything.
 */
import assert from "node:assert/strict";
import { IdempotencyStore } from "../../routes/idempotency.ts";
import { type InProcess, type Json, withAgent } from "../contract_fixture.ts";
import { REFUSING_PORT } from "../helpers/ports.ts";

async function waitFinished(h: InProcess, id: string): Promise<Json> {
  const end = Date.now() + 20_000;
  for (;;) {
    const r = await h.request("GET", `/migrations/${id}`);
    if (/completed|failed|cancelled/.test(r.body.status)) return r.body;
    if (Date.now() > end) throw new Error(`migration ${id} never finished: ${r.text}`);
    await new Promise((res) => setTimeout(res, 20));
  }
}

Deno.test("a migration is a resource: id, Location, GET by id, newest first, at most 32 kept", async () => {
  await withAgent(async (h) => {
    assert.deepEqual((await h.request("GET", "/migrations")).body, []);
    const uri = `tcp:127.0.0.1:${REFUSING_PORT}`;
    const ids: string[] = [];
    for (let i = 0; i < 34; i++) {
      const r = await h.request("POST", "/migrations", { uri });
      assert.equal(r.status, 202, r.text);
      assert.equal(r.headers.get("location"), `/migrations/${r.body["x-id"]}`);
      assert.equal(r.body["x-side"], "source");
      ids.push(r.body["x-id"]);
      const done = await waitFinished(h, r.body["x-id"]);
      assert.equal(done.status, "failed");
      assert.equal(typeof done["error-desc"], "string");
    }
    assert.equal(new Set(ids).size, 34, "ids are unique");
    const list = (await h.request("GET", "/migrations")).body as Json[];
    assert.equal(list.length, 32, "the list is bounded");
    assert.deepEqual(list.map((m) => m["x-id"]), ids.slice(2).reverse(), "newest first");
    assert.equal(
      (await h.request("GET", `/migrations/${ids[0]}`)).status,
      404,
      "the oldest is forgotten",
    );
    const current = (await h.request("GET", "/migrations/current")).body;
    assert.equal(current["x-id"], ids.at(-1));
  });
});

Deno.test("Idempotency-Key: a retry replays the first response and starts nothing; another body is 422", async () => {
  await withAgent(async (h) => {
    const uri = `tcp:127.0.0.1:${REFUSING_PORT}`;
    const key = { "idempotency-key": "retry-1" };
    const first = await h.request("POST", "/migrations", { uri }, key);
    assert.equal(first.status, 202);
    assert.equal(first.headers.get("idempotent-replayed"), null);
    await waitFinished(h, first.body["x-id"]);
    const again = await h.request("POST", "/migrations", { uri }, key);
    assert.equal(again.status, 202);
    assert.equal(again.headers.get("idempotent-replayed"), "true");
    assert.equal(again.headers.get("location"), first.headers.get("location"));
    assert.deepEqual(again.body, first.body, "the first response's body, not the current state");
    assert.equal((await h.request("GET", "/migrations")).body.length, 1, "nothing new started");
    // Member order does not matter; a different request does.
    const reordered = await h.request(
      "POST",
      "/migrations",
      `{"detach": true, "uri": "${uri}"}`,
      key,
    );
    assert.equal(reordered.status, 422);
    assert.equal(reordered.headers.get("content-type"), "application/problem+json");
    assert.equal(
      reordered.body.detail,
      "Idempotency-Key 'retry-1' was already used with a different request body",
    );
    const other = await h.request("POST", "/migrations", { uri }, { "idempotency-key": "retry-2" });
    assert.equal(other.status, 202);
    assert.notEqual(other.body["x-id"], first.body["x-id"]);
    await waitFinished(h, other.body["x-id"]);
    assert.equal((await h.request("GET", "/migrations")).body.length, 2);
    const tooLong = await h.request("POST", "/migrations", { uri }, {
      "idempotency-key": "k".repeat(256),
    });
    assert.equal(tooLong.status, 400);
  });
});

Deno.test("Idempotency-Key: a refused request is not remembered, so its retry runs again", async () => {
  await withAgent(async (h) => {
    const blocker = (await h.request("POST", "/blockers", { reason: "not yet" })).body;
    const key = { "idempotency-key": "after-unblock" };
    const uri = `tcp:127.0.0.1:${REFUSING_PORT}`;
    assert.equal((await h.request("POST", "/migrations", { uri }, key)).status, 409);
    assert.equal((await h.request("DELETE", `/blockers/${blocker.id}`)).status, 204);
    const r = await h.request("POST", "/migrations", { uri }, key);
    assert.equal(r.status, 202);
    await waitFinished(h, r.body["x-id"]);
  });
});

Deno.test("the idempotency store is bounded: the oldest key is forgotten first", () => {
  const store = new IdempotencyStore<number>(2);
  let runs = 0;
  const run = (key: string) => store.run(key, { uri: "u" }, () => ++runs);
  assert.deepEqual(run("a"), { value: 1, replayed: false });
  assert.deepEqual(run("b"), { value: 2, replayed: false });
  assert.deepEqual(run("a"), { value: 1, replayed: true });
  assert.deepEqual(run("c"), { value: 3, replayed: false });
  assert.equal(store.size, 2);
  assert.deepEqual(run("a"), { value: 4, replayed: false }, "a was evicted");
});

Deno.test("dry run: 200 when every check passes, and nothing starts", async () => {
  await withAgent(async (h) => {
    const r = await h.request("POST", "/migrations?dry-run=true", { uri: "tcp:127.0.0.1:4444" });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body, { "dry-run": true, ok: true });
    assert.deepEqual((await h.request("GET", "/migrations")).body, []);
    assert.deepEqual((await h.request("GET", "/migrations/current")).body, { status: "none" });
    const off = await h.request("POST", "/migrations?dry-run=false", { uri: "foo:bar" });
    assert.equal(off.status, 400, "dry-run=false is a real migrate");
    assert.equal(
      (await h.request("POST", "/migrations?dry-run=maybe", { uri: "tcp:127.0.0.1:1" })).status,
      400,
    );
  });
});

Deno.test("dry run: every problem is reported, in the seed's order, with the first one's status", async () => {
  await withAgent(async (h) => {
    await h.request("POST", "/blockers", { reason: "first blocker" });
    await h.request("POST", "/blockers", { reason: "device xyz is not migratable" });
    // blk with the block capability already on: the seed's migrate_prepare refusal.
    assert.equal((await h.request("PATCH", "/capabilities", { block: true })).status, 200);
    const r = await h.request("POST", "/migrations?dry-run=true", { uri: "foo:bar", blk: true });
    assert.equal(r.status, 409, r.text);
    assert.equal(r.headers.get("content-type"), "application/problem+json");
    const details = [
      "device xyz is not migratable",
      "Command options are incompatible with current migration capabilities",
      "Parameter 'uri' expects a valid migration protocol (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
    ];
    assert.deepEqual(r.body.errors.map((e: Json) => e.detail), details);
    assert.ok(r.body.errors.every((e: Json) => e.class === "GenericError"));
    assert.equal(r.body.detail, details.join("; "));
    // The real migrate fails with the first problem only: the newest blocker's reason.
    const real = await h.request("POST", "/migrations", { uri: "foo:bar", blk: true });
    assert.equal(real.status, 409);
    assert.equal(real.body.detail, "device xyz is not migratable");
    assert.equal(real.body.errors, undefined);
    assert.deepEqual((await h.request("GET", "/migrations")).body, []);
  });
  await withAgent(async (h) => {
    const r = await h.request("POST", "/migrations?dry-run=true", { uri: "rdma:host:1" });
    assert.equal(r.status, 409);
    assert.deepEqual(r.body.errors.map((e: Json) => e.detail), [
      "Guest is waiting for an incoming migration",
      "RDMA migration is not supported by this build",
    ]);
  }, { incoming: "defer" });
});

Deno.test("total-time counts from the migrate command (QEMU's start_time), Worker start-up included", async () => {
  // A peer that accepts and never reads: the migration goes active, then blocks on writes
  // (16 MiB of random pages: more than the socket buffers hold, so it cannot reach its end,
  // past which a cancel would be refused).
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })();
  try {
    await withAgent(async (h) => {
      const uri = `tcp:127.0.0.1:${(listener.addr as Deno.NetAddr).port}`;
      const r = await h.request("POST", "/migrations", { uri });
      assert.equal(r.status, 202, r.text);
      const answered = Date.now();
      let info: Json;
      const give = Date.now() + 20_000; // the first Worker of a test process can take ~1 s
      while (Date.now() < give) {
        const asked = Date.now();
        info = (await h.request("GET", "/migrations/current")).body;
        if (info.status === "active") {
          // The clock started before the POST was answered, so it has run at least as long
          // as the time since then (a clock started by the data-path Worker, tens of ms
          // later, would show less).
          assert.ok(
            info["total-time"] >= asked - answered - 1,
            `total-time ${info["total-time"]} ms, ${asked - answered} ms since the POST's answer`,
          );
          assert.ok(info["setup-time"] <= info["total-time"]);
          break;
        }
        await new Promise((res) => setTimeout(res, 2));
      }
      assert.equal(info.status, "active", JSON.stringify(info));
      await h.request("POST", "/migrations/current/cancel");
      for (let i = 0; i < 2000 && info.status !== "cancelled"; i++) {
        await new Promise((res) => setTimeout(res, 10));
        info = (await h.request("GET", "/migrations/current")).body;
      }
      assert.equal(info.status, "cancelled");
    }, { blocks: [{ name: "pc.ram", size: 16 << 20 }], fill: "random" });
  } finally {
    listener.close();
    await accepting.catch(() => {});
    for (const c of held) c.close();
  }
});
