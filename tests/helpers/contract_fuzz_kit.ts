/**
 * Test helper for the contract property tests: generators of requests to every route of
 * the served OpenAPI document (bodies valid, boundary and wrong; query strings; headers;
 * path ids), and the check every answer must pass: never a 5xx; every 4xx a problem+json
 * with its detail, changing nothing. The one 4xx that may change something is a migrate
 * that failed after it started (the seed's setup → failed): it names the failed migration
 * (`x-id`, `Location`), which must then be the current one, and nothing else may change.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { CAPABILITY_NAMES, PARAMETER_NAMES } from "../../domain/options.ts";
import { MIGRATION_STATUSES } from "../../domain/state_machine.ts";
import { openApiDocument } from "../../routes/app.ts";
import { type Json, type Reply, replyOf } from "../contract_fixture.ts";

/** Sends one request. */
export type Send = (method: string, path: string, init: RequestInit) => Promise<Reply>;

/** Every documented operation plus the served contract, and a few that do not exist. */
export function endpoints(): [string, string][] {
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
  "x-policy",
  "__proto__",
  "constructor",
];
// No exec: URIs, and nothing that listens: no random migrate can reach a real peer.
const URIS = [
  "tcp:127.0.0.1:1",
  "tcp:127.0.0.1:0",
  "tcp:[::1",
  "unix:/nonexistent/ferry.sock",
  "foo:bar",
  "rdma:x",
  "fd:3",
  "defer",
  "",
];

/** Integers at the edges of the seed's ranges and of JSON's doubles. */
const BOUNDARY_INTEGERS = [
  "-1",
  "0",
  "1",
  "99",
  "100",
  "255",
  "256",
  "4096",
  "2000000",
  "2000001",
  "4294967295",
  "4294967296",
  "9007199254740991",
  "9007199254740993",
  "9223372036854775808",
  "-9223372036854775808",
  "-9223372036854775809",
  "18446744073709551615",
  "18446744073709551616",
  "1e400",
  "-0",
  "1.0",
  "0.5",
];

const valueArb = fc.oneof(
  fc.integer(),
  fc.integer({ min: -2, max: 300 }),
  fc.double(),
  fc.boolean(),
  fc.constant(null),
  fc.string(),
  fc.constantFrom(...URIS),
  fc.constantFrom(...MIGRATION_STATUSES),
  fc.array(fc.jsonValue(), { maxLength: 3 }),
  fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 3 }),
);

/** A JSON object text whose members are `NAMES` with raw boundary integers (digit for digit). */
const rawNumbersArb = fc.dictionary(
  fc.constantFrom(...NAMES),
  fc.constantFrom(...BOUNDARY_INTEGERS),
  { minKeys: 1, maxKeys: 3 },
).map((o) => `{${Object.entries(o).map(([k, v]) => `${JSON.stringify(k)}: ${v}`).join(", ")}}`);

const bodyArb: fc.Arbitrary<string | undefined> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.dictionary(fc.constantFrom(...NAMES), valueArb, { maxKeys: 4 }).map((o) =>
      JSON.stringify(o)
    ),
  },
  { weight: 2, arbitrary: rawNumbersArb },
  { weight: 2, arbitrary: fc.constantFrom(...URIS).map((uri) => JSON.stringify({ uri })) },
  {
    weight: 1,
    arbitrary: fc.record({ uri: fc.constantFrom(...URIS), resume: fc.boolean() }).map((o) =>
      JSON.stringify(o)
    ),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      uri: fc.constantFrom(...URIS),
      "x-policy": fc.record({
        "completion-timeout-per-gib": fc.oneof(fc.double(), fc.integer({ min: -1, max: 90000 })),
        "progress-timeout": fc.oneof(fc.double(), fc.integer({ min: -1, max: 90000 })),
        actions: fc.array(fc.constantFrom("auto-converge", "postcopy", "cancel", "explode"), {
          maxLength: 9,
        }),
      }, { requiredKeys: [] }),
    }).map((o) => JSON.stringify(o)),
  },
  {
    weight: 1,
    arbitrary: fc.constantFrom(...MIGRATION_STATUSES, "", "bogus").map((state) =>
      JSON.stringify({ state })
    ),
  },
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

/** Query strings: the documented ones with good and bad values, and unknown ones. */
const queryArb = fc.option(
  fc.oneof(
    fc.constantFrom("true", "false", "yes", "").map((v) => `dry-run=${v}`),
    fc.constantFrom("now", "auto", "later", "").map((v) => `at=${v}`),
    fc.tuple(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 })).map(([k, v]) =>
      `${encodeURIComponent(k)}=${encodeURIComponent(v)}`
    ),
  ),
  { nil: undefined },
);

/** One generated request; `id: null` stands for an id the agent really has. */
export function requestArb(ops: [string, string][]) {
  return fc.record({
    op: fc.constantFrom(...ops),
    id: fc.oneof(
      fc.constant(null),
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
    query: queryArb,
    idempotencyKey: fc.option(fc.string({ maxLength: 300 }), { nil: undefined }),
    ifMatch: fc.option(fc.oneof(fc.string(), fc.constant("*")), { nil: undefined }),
    lastEventId: fc.option(fc.oneof(fc.string(), fc.nat().map(String)), { nil: undefined }),
  });
}

/** One generated request. */
export type Sample = ReturnType<typeof requestArb> extends fc.Arbitrary<infer T> ? T : never;

/**
 * The parts of the agent a rejected request must leave alone (no running counters). With
 * `runstate: false` the guest's runstate is left out: a running migration moves it on its
 * own (running → finish-migrate at its completion stage).
 */
export async function snapshot(send: Send, opts = { runstate: true }): Promise<Json> {
  const get = async (p: string) => (await send("GET", p, {})).body;
  const current = await get("/migrations/current");
  return {
    parameters: await get("/parameters"),
    capabilities: await get("/capabilities"),
    current: { status: current.status, id: current["x-id"] },
    blockers: await get("/blockers"),
    ...(opts.runstate ? { runstate: (await get("/machine")).runstate } : {}),
  };
}

function isHeaderSafe(s: string): boolean {
  return /^[\x20-\x7e]*$/.test(s) && s.trim() === s;
}

/** An id the agent really has for `template`'s `{id}`: the current migration, a blocker. */
function realIdFor(template: string, state: Json): string {
  if (template.startsWith("/blockers")) return state.blockers[0]?.id ?? "blocker-1";
  return state.current.id ?? "out-none";
}

/** Sends `s`; `state` (a snapshot) gives a path id the sample leaves to the agent. */
export async function fire(send: Send, s: Sample, state: Json): Promise<Reply> {
  const [method, template] = s.op;
  const id = s.id ?? realIdFor(template, state);
  const path = template.replace("{id}", encodeURIComponent(id)) +
    (s.query !== undefined ? `?${s.query}` : "");
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

/** Fires `s` and checks the answer (see the module doc); tallies statuses; returns the reply. */
export async function checkOne(
  send: Send,
  s: Sample,
  tally: Map<number, number>,
  opts = { runstate: true },
): Promise<Reply> {
  const before = await snapshot(send, opts);
  const r = await fire(send, s, before);
  tally.set(r.status, (tally.get(r.status) ?? 0) + 1);
  const what = `${s.op.join(" ")} ${JSON.stringify(s).slice(0, 300)} -> ${r.status} ${
    r.text.slice(0, 200)
  }`;
  assert.ok(r.status < 500, what);
  if (r.status >= 400) {
    assert.equal(r.headers.get("content-type"), "application/problem+json", what);
    assert.equal(typeof r.body.detail, "string", what);
    assert.ok(r.body.detail.length > 0, what);
    assert.equal(typeof r.body.class, "string", what);
    assert.equal(r.body.status, r.status, what);
    const after = await snapshot(send, opts);
    if (r.body["x-id"] !== undefined) {
      // A migrate that failed after it started: recorded, and nothing else changed.
      assert.equal(r.headers.get("location"), `/migrations/${r.body["x-id"]}`, what);
      assert.deepEqual(after.current, { status: "failed", id: r.body["x-id"] }, what);
      after.current = before.current;
    }
    assert.deepEqual(after, before, `a ${r.status} changed the agent: ${what}`);
  }
  return r;
}

/** Sends through `app.request`; an event stream is cancelled after its headers. */
export function inProcessSender(
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
