/**
 * Issue 19: the seed's answers, exactly. migrate-continue compares the state (none
 * included); a source in postmigrate refuses a second migrate until cont.
 */
import assert from "node:assert/strict";
import { type InProcess, type Json, withAgent } from "../contract_fixture.ts";

function assertProblem(r: { status: number; headers: Headers; body: Json }, status: number) {
  assert.equal(r.status, status, JSON.stringify(r.body));
  assert.equal(r.headers.get("content-type"), "application/problem+json");
  assert.equal(r.body.status, status);
}

Deno.test("migrate-continue with no migration: 'none' succeeds, any other state is the seed's 409", async () => {
  await withAgent(async ({ request }) => {
    const ok = await request("POST", "/migrations/current/continue", { state: "none" });
    assert.equal(ok.status, 202, ok.text);
    assert.deepEqual(ok.body, { status: "none" });
    for (const state of ["pre-switchover", "active", "completed"]) {
      const wrong = await request("POST", "/migrations/current/continue", { state });
      assertProblem(wrong, 409);
      assert.equal(wrong.body.detail, "Migration not in expected state: none");
    }
    assert.deepEqual((await request("GET", "/migrations")).body, [], "nothing was started");
  });
});

/** Polls `GET /migrations/current` of `h` until its status matches. */
async function waitStatus(h: InProcess, pattern: RegExp): Promise<Json> {
  const end = Date.now() + 30_000;
  for (;;) {
    const r = await h.request("GET", "/migrations/current");
    if (pattern.test(r.body.status)) return r.body;
    if (Date.now() > end) throw new Error(`status never matched ${pattern}: ${r.text}`);
    await new Promise((res) => setTimeout(res, 10));
  }
}

Deno.test("a source in postmigrate refuses a second migrate with QEMU's text; after cont it may", async () => {
  await withAgent(async (dst) => {
    await withAgent(async (src) => {
      const uri = dst.agent.incomingUri!;
      assert.equal((await src.request("POST", "/migrations", { uri })).status, 202);
      await waitStatus(src, /^completed$/);
      await waitStatus(dst, /^completed$/);
      assert.equal((await src.request("GET", "/machine")).body.runstate, "postmigrate");
      const history = (await src.request("GET", "/migrations")).body;
      const again = await src.request("POST", "/migrations", { uri });
      assertProblem(again, 409);
      assert.equal(
        again.body.detail,
        "Can't migrate the vm that was paused due to previous migration",
      );
      assert.deepEqual((await src.request("GET", "/migrations")).body, history, "nothing started");
      const dry = await src.request("POST", "/migrations?dry-run=true", { uri });
      assert.equal(dry.status, 409);
      assert.equal(dry.body.detail, again.body.detail);
      const cont = await src.request("POST", "/machine/cont");
      assert.equal(cont.status, 202, cont.text);
      assert.equal((await src.request("GET", "/machine")).body.runstate, "running");
      // Allowed again: this one has nowhere to go (a unix socket path that cannot exist; the
      // destination's port, closed now, may be another test's listener by then), so it fails,
      // but it starts.
      const nowhere = `unix:/nonexistent-${crypto.randomUUID()}/migrate.sock`;
      const third = await src.request("POST", "/migrations", { uri: nowhere });
      assert.equal(third.status, 202, third.text);
      assert.equal((await waitStatus(src, /^(completed|failed)$/)).status, "failed");
    });
  }, { incoming: "tcp:127.0.0.1:0" });
});
