/**
 * Issue 3, item 3, as properties: random bodies, content types and headers at every
 * endpoint of a real agent never get a 5xx, every 4xx is a problem+json, and a 4xx never
 * changes anything (parameters, capabilities, the current migration, blockers, runstate).
 * In process via `app.request()` for speed, then a few hundred over real HTTP.
 * The agent carries a blocker throughout, so no random URI can ever start a migration.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CAPABILITY_NAMES, PARAMETER_NAMES } from "../domain/options.ts";
import { openApiDocument } from "../routes/app.ts";
import { type Json, type Reply, replyOf, withAgent } from "./contract_fixture.ts";
import { startAgent } from "./helpers/agent_process.ts";

type Send = (method: string, path: string, init: RequestInit) => Promise<Reply>;

/** Every documented operation plus the served contract, and a few that do not exist. */
function endpoints(): [string, string][] {
  const doc = openApiDocument() as Json;
  const ops: [string, string][] = [];
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const method of Object.keys(item)) ops.push([method.toUpperCase(), path]);
  }
  return [
    ...ops,
    ["GET", "/openapi.json"],
    ["GET", "/openapi.yaml"],
    ["GET", "/docs"],
    ["PUT", "/parameters"],
    ["DELETE", "/migrations"],
    ["POST", "/nowhere"],
  ];
}

const NAMES = [
  ...PARAMETER_NAMES,
  ...CAPABILITY_NAMES,
  "uri",
  "resume",
  "blk",
  "inc",
  "detach",
  "reason",
  "state",
  "__proto__",
  "constructor",
];
// No exec: URIs: even though the blocker refuses every migrate, the generator never builds one.
const URIS = [
  "tcp:127.0.0.1:1",
  "tcp:127.0.0.1:0",
  "unix:/nonexistent/ferry.sock",
  "foo:bar",
  "rdma:x",
  "fd:3",
  "",
];

const valueArb = fc.oneof(
  fc.integer(),
  fc.integer({ min: -2, max: 300 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string(),
  fc.constantFrom(...URIS),
  fc.array(fc.jsonValue(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
);

const bodyArb: fc.Arbitrary<string | undefined> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.dictionary(fc.constantFrom(...NAMES), valueArb, { maxKeys: 4 }).map((o) =>
      JSON.stringify(o)
    ),
  },
  { weight: 2, arbitrary: fc.constantFrom(...URIS).map((uri) => JSON.stringify({ uri })) },
  {
    weight: 1,
    arbitrary: fc.string({ maxLength: 5000 }).map((reason) => JSON.stringify({ reason })),
  },
  { weight: 2, arbitrary: fc.json() },
  { weight: 2, arbitrary: fc.string() },
  { weight: 1, arbitrary: fc.constant(undefined) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 64 * 1024 - 24, max: 64 * 1024 + 64 }).map((n) =>
      `{"reason": "${"x".repeat(n)}"}`
    ),
  },
);

const requestArb = (ops: [string, string][]) =>
  fc.record({
    op: fc.constantFrom(...ops),
    id: fc.oneof(
      fc.string({ minLength: 1 }),
      fc.constantFrom("out-x", "blocker-2", "%2e%2e", "a".repeat(200)),
    ),
    body: bodyArb,
    contentType: fc.oneof(
      { weight: 6, arbitrary: fc.constant("application/json") },
      {
        weight: 3,
        arbitrary: fc.constantFrom(
          "application/json; charset=utf-8",
          "application/merge-patch+json",
          "text/plain",
          undefined,
        ),
      },
    ),
    dryRun: fc.option(fc.constantFrom("true", "false", "yes", ""), { nil: undefined }),
    idempotencyKey: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
    ifMatch: fc.option(fc.oneof(fc.string(), fc.constant("*")), { nil: undefined }),
    lastEventId: fc.option(fc.oneof(fc.string(), fc.nat().map(String)), { nil: undefined }),
  });

type Sample = ReturnType<typeof requestArb> extends fc.Arbitrary<infer T> ? T : never;

/** The parts of the agent a rejected request must leave alone. */
async function snapshot(send: Send): Promise<Json> {
  const get = async (p: string) => (await send("GET", p, {})).body;
  const machine = await get("/machine");
  return {
    parameters: await get("/parameters"),
    capabilities: await get("/capabilities"),
    current: await get("/migrations/current"),
    blockers: await get("/blockers"),
    runstate: machine.runstate,
  };
}

function isHeaderSafe(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s) && s.trim() === s;
}

async function fire(send: Send, s: Sample): Promise<Reply> {
  const [method, template] = s.op;
  const path = template.replace("{id}", encodeURIComponent(s.id)) +
    (s.dryRun !== undefined ? `?dry-run=${encodeURIComponent(s.dryRun)}` : "");
  const headers: Record<string, string> = {};
  const withBody = s.body !== undefined && method !== "GET" && method !== "HEAD";
  if (withBody && s.contentType) headers["content-type"] = s.contentType;
  for (
    const [name, v] of [["idempotency-key", s.idempotencyKey], ["if-match", s.ifMatch], [
      "last-event-id",
      s.lastEventId,
    ]]
  ) {
    if (v !== undefined && isHeaderSafe(v)) headers[name as string] = v;
  }
  return await send(method, path, { method, headers, body: withBody ? s.body : undefined });
}

async function checkOne(send: Send, s: Sample, tally: Map<number, number>): Promise<void> {
  const before = await snapshot(send);
  const r = await fire(send, s);
  tally.set(r.status, (tally.get(r.status) ?? 0) + 1);
  const what = `${s.op.join(" ")} ${JSON.stringify(s).slice(0, 300)} -> ${r.status} ${
    r.text.slice(0, 200)
  }`;
  assert.ok(r.status < 500, what);
  if (r.status >= 400) {
    assert.equal(r.headers.get("content-type"), "application/problem+json", what);
    assert.equal(typeof r.body.detail, "string", what);
    assert.equal(typeof r.body.class, "string", what);
    assert.equal(r.body.status, r.status, what);
    assert.deepEqual(await snapshot(send), before, `a ${r.status} changed the agent: ${what}`);
  }
}

/** Sends through `app.request`; an event stream is cancelled after its headers. */
function inProcessSender(
  app: { request: (p: string, i: RequestInit) => Response | Promise<Response> },
): Send {
  return async (_method, path, init) => {
    const r = await app.request(path, init);
    if (r.headers.get("content-type")?.startsWith("text/event-stream")) {
      await r.body?.cancel();
      return { status: r.status, headers: r.headers, body: null, text: "" };
    }
    return await replyOf(r);
  };
}

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
        requestArb(ops).filter((s) => !(s.op[0] === "DELETE" && s.id === blocker.body.id)),
        (s) => checkOne(send, s, tally),
      ),
      { seed, numRuns: 600 },
    );
    console.log("statuses", Object.fromEntries(tally));
    for (const status of [200, 400, 404, 409, 413, 415]) {
      assert.ok(tally.has(status), `no ${status} seen`);
    }
    const still = await request("GET", "/blockers");
    assert.ok(still.body.some((b: Json) => b.id === blocker.body.id), "the safety blocker stayed");
  });
});

Deno.test("property: random requests over real HTTP never 5xx; a 4xx changes nothing; the agent stays up", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const ops = endpoints().filter(([m, p]) => !(m === "GET" && p === "/events"));
  const agent = await startAgent(["--ram", "4M"]);
  try {
    const blocker = await agent.api("POST", "/blockers", { reason: "fuzzing over HTTP" });
    assert.equal(blocker.status, 201);
    const send: Send = async (_m, path, init) => replyOf(await fetch(agent.base + path, init));
    const tally = new Map<number, number>();
    await fc.assert(
      fc.asyncProperty(
        requestArb(ops).filter((s) => !(s.op[0] === "DELETE" && s.id === blocker.body.id)),
        (s) => checkOne(send, s, tally),
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
