/**
 * Issue 19: the seed's answers, exactly. migrate-continue compares the state (none
 * included); a source in postmigrate refuses a second migrate until cont.
 */
import assert from "node:assert/strict";
import { type Json, withAgent } from "./contract_fixture.ts";

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
