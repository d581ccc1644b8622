/**
 * Issue 3, item 3, as properties: random bodies, content types and headers at every
 * endpoint of a real agent never get a 5xx, every 4xx is a problem+json, and a 4xx never
 * changes anything (parameters, capabilities, the current migration, blockers, runstate).
 * In process via `app.request()` for speed, then a few hundred over real HTTP.
 * The agent carries a blocker throughout, so no random URI can ever start a migration.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { replyOf, withAgent } from "./contract_fixture.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import {
  checkOne,
  endpoints,
  inProcessSender,
  requestArb,
  type Send,
} from "./helpers/contract_fuzz_kit.ts";

Deno.test("property: random requests to every endpoint (in process) never 5xx, and a 4xx changes nothing", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const ops = endpoints();
  await withAgent(async ({ app, request }) => {
    const blocker = await request("POST", "/blockers", {
      reason: "fuzzing: no migration may start",
    });
    assert.equal(blocker.status, 201);
    const send = inProcessSender(app);
    const tally = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        requestArb(ops).filter((s) =>
          !(s.op[0] === "DELETE" && (s.id === null || s.id === blocker.body.id))
        ),
        async (s) => void await checkOne(send, s, tally),
      ),
      { seed, numRuns: 600 },
    );
    console.log("statuses", Object.fromEntries(tally));
    for (const status of [200, 400, 404, 409, 413, 415]) {
      assert.ok(tally.has(status), `no ${status} seen`);
    }
    const still = await request("GET", "/blockers");
    assert.ok(
      still.body.some((b: { id: string }) => b.id === blocker.body.id),
      "the safety blocker stayed",
    );
  });
});

Deno.test("property: random requests over real HTTP never 5xx; a 4xx changes nothing; the agent stays up", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const ops = endpoints().filter(([m, p]) => !(m === "GET" && p === "/events"));
  const agent = await startLocalAgent(["--ram", "4M"]);
  try {
    const blocker = await agent.api("POST", "/blockers", { reason: "fuzzing over HTTP" });
    assert.equal(blocker.status, 201);
    // An event stream (GET /machine/output, say) never ends: cancelled after its headers.
    const send: Send = async (_m, path, init) => {
      const r = await fetch(agent.base + path, init);
      if (r.headers.get("content-type")?.startsWith("text/event-stream")) {
        await r.body?.cancel();
        return { status: r.status, headers: r.headers, body: null, text: "" };
      }
      return await replyOf(r);
    };
    const tally = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        requestArb(ops).filter((s) =>
          !(s.op[0] === "DELETE" && (s.id === null || s.id === blocker.body.id))
        ),
        async (s) => void await checkOne(send, s, tally),
      ),
      { seed, numRuns: 150 },
    );
    console.log("statuses", Object.fromEntries(tally));
    // A body that announces a huge length is refused before it is read.
    const big = await fetch(agent.base + "/parameters", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: new Uint8Array(1 << 20).fill(0x20),
    });
    assert.equal(big.status, 413);
    await big.body?.cancel();
    assert.equal((await agent.api("GET", "/healthz")).status, 200);
  } finally {
    await agent.stop();
  }
});
