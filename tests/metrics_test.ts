/**
 * Issue 7, item 5 (metrics): `GET /metrics` in the Prometheus text format, parsed strictly
 * here; its values agree with `/migrations/current` during and after a real migration;
 * HTTP requests are counted by matched route, method and code; SSE subscribers and
 * finished migrations are counted.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { createLogger, migrationEventLogger } from "../domain/log.ts";
import { FerryMetrics } from "../routes/metrics.ts";
import { type Json, type TestAgent } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { type InProcess, openAgent } from "./contract_fixture.ts";
import { waitFor } from "../harness/wait.ts";

/** Parsed exposition: family types and every sample by series key `name{a="x",b="y"}`. */
interface Exposition {
  types: Map<string, string>;
  samples: Map<string, number>;
}

const NAME = /^[a-zA-Z_:][a-zA-Z0-9_:]*$/;
const LABEL = /^([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\[\\"n])*)"/;
const VALUE = /^(?:[+-]?(?:\d+\.?\d*(?:[eE][+-]?\d+)?|\.\d+(?:[eE][+-]?\d+)?)|NaN|[+-]Inf)$/;

function familyOf(name: string, types: Map<string, string>): string {
  for (const suffix of ["_bucket", "_sum", "_count"]) {
    const base = name.endsWith(suffix) ? name.slice(0, -suffix.length) : "";
    if (base && /histogram|summary/.test(types.get(base) ?? "")) return base;
  }
  return name;
}

/**
 * The text format 0.0.4, strictly: HELP/TYPE lines, samples with valid names, labels and
 * values, a TYPE before a family's samples, families contiguous, no repeated series.
 */
function parseExposition(text: string): Exposition {
  const types = new Map<string, string>();
  const samples = new Map<string, number>();
  const closed = new Set<string>();
  let current = "";
  const fail = (n: number, why: string, line: string) => {
    throw new Error(`line ${n + 1}: ${why}: ${JSON.stringify(line)}`);
  };
  assert.ok(text.endsWith("\n"), "the exposition ends with a newline");
  text.slice(0, -1).split("\n").forEach((line, n) => {
    if (line === "") return;
    const meta = /^# (HELP|TYPE) (\S+)(?: (.*))?$/.exec(line);
    if (meta) {
      const [, kind, name, rest = ""] = meta;
      if (!NAME.test(name)) fail(n, "bad metric name", line);
      if (kind === "TYPE") {
        if (!/^(counter|gauge|histogram|summary|untyped)$/.test(rest)) fail(n, "bad type", line);
        if (types.has(name)) fail(n, "second TYPE", line);
        types.set(name, rest);
      } else if (/\\[^\\n]/.test(rest.replace(/\\\\/g, ""))) fail(n, "bad HELP escape", line);
      return;
    }
    if (line.startsWith("#")) return; // a comment
    const name = /^[a-zA-Z_:][a-zA-Z0-9_:]*/.exec(line)?.[0];
    if (!name) return fail(n, "no metric name", line);
    let rest = line.slice(name.length);
    const labels: string[] = [];
    if (rest.startsWith("{")) {
      rest = rest.slice(1);
      while (!rest.startsWith("}")) {
        const m = LABEL.exec(rest);
        if (!m) return fail(n, "bad label", line);
        labels.push(`${m[1]}="${m[2]}"`);
        rest = rest.slice(m[0].length);
        if (rest.startsWith(",")) rest = rest.slice(1);
        else if (!rest.startsWith("}")) return fail(n, "bad label separator", line);
      }
      rest = rest.slice(1);
    }
    const parts = rest.split(" ");
    if (parts[0] !== "" || parts.length < 2 || parts.length > 3) fail(n, "bad value field", line);
    if (!VALUE.test(parts[1])) fail(n, "bad value", line);
    if (parts[2] !== undefined && !/^-?\d+$/.test(parts[2])) fail(n, "bad timestamp", line);
    const family = familyOf(name, types);
    if (!types.has(family)) fail(n, "sample before its TYPE", line);
    if (family !== current) {
      if (closed.has(family)) fail(n, "family not contiguous", line);
      if (current) closed.add(current);
      current = family;
    }
    const key = `${name}{${labels.sort().join(",")}}`;
    if (samples.has(key)) fail(n, "repeated series", line);
    samples.set(key, Number(parts[1].replace("Inf", "Infinity")));
  });
  return { types, samples };
}

Deno.test("the exposition parser accepts the format and rejects malformed lines", () => {
  const good = [
    "# HELP a_total Things\\n counted \\\\ here",
    "# TYPE a_total counter",
    'a_total{route="/x/{id}",code="200"} 3',
    'a_total{route="q\\"uote\\\\"} 1 1700000000000',
    "# a comment",
    "",
    "# TYPE b gauge",
    "b -1.5e3",
    'b{x="1",} +Inf',
    "",
  ].join("\n");
  const { samples } = parseExposition(good);
  assert.equal(samples.get('a_total{code="200",route="/x/{id}"}'), 3);
  assert.equal(samples.get('b{x="1"}'), Infinity);
  const bad = [
    "b 1", // no TYPE
    "# TYPE b gauge\nb one",
    "# TYPE b gauge\nb{x=1} 1",
    '# TYPE b gauge\nb{x="1" 1',
    '# TYPE b gauge\nb{x="a\\q"} 1',
    "# TYPE b gauge\nb 1\nb 2",
    '# TYPE b gauge\n# TYPE c gauge\nb 1\nc 1\nb{x="1"} 2',
    "# TYPE b gauges\nb 1",
    "# TYPE 9b gauge",
    "# TYPE b gauge\nb  1",
    "# TYPE b gauge\nb 1 x",
  ];
  for (const text of bad) assert.throws(() => parseExposition(text + "\n"), text);
});

/** Scrapes `/metrics` of the agent at `base` (or through `get`, an in-process app's request). */
async function scrape(
  base: string,
  get: (url: string) => Promise<Response> | Response = fetch,
): Promise<Map<string, number>> {
  const r = await get(`${base}/metrics`);
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /^text\/plain; version=0\.0\.4/);
  const { samples, types } = parseExposition(await r.text());
  assert.equal(types.get("ferry_http_requests_total"), "counter");
  assert.equal(types.get("ferry_migration_transferred_bytes"), "gauge");
  return samples;
}

/** The value of one series (absent: undefined). */
function at(samples: Map<string, number>, name: string, labels: Record<string, string> = {}) {
  const key = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(",");
  return samples.get(`${name}{${key}}`);
}

/** The current status according to the stateset gauge; exactly one must be 1. */
function statusOf(samples: Map<string, number>): string {
  const on = [...samples].filter(([k, v]) => k.startsWith("ferry_migration_status{") && v === 1);
  assert.equal(on.length, 1, JSON.stringify(on));
  return /status="([^"]+)"/.exec(on[0][0])![1];
}

Deno.test("metrics agree with /migrations/current during and after a migration", async () => {
  const agents: TestAgent[] = [];
  try {
    const [dst, src] = await startLocalAgents(
      (a) => (agents.push(a), a),
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random"],
    );
    const idle = await scrape(src.base);
    assert.equal(statusOf(idle), "none");
    assert.equal(at(idle, "ferry_migration_transferred_bytes"), 0);
    assert.equal(at(idle, "ferry_machine_runstate", { runstate: "running" }), 1);
    const waiting = await scrape(dst.base);
    assert.equal(at(waiting, "ferry_machine_runstate", { runstate: "inmigrate" }), 1);
    // 16 MiB at 24 MiB/s: long enough to be scraped while active.
    const limit = 24 * 2 ** 20;
    assert.equal((await src.api("PATCH", "/parameters", { "max-bandwidth": limit })).status, 200);
    const started = await src.api("POST", "/migrations", { uri: dst.incomingUri });
    assert.equal(started.status, 202);
    // Wait until bytes flow, then scrape between two queries: the counters lie between them.
    let before: Json = await src.waitStatus(/^active$/);
    while (before.status === "active" && !(before.ram?.transferred > 0)) {
      await new Promise((r) => setTimeout(r, 10));
      before = (await src.api("GET", "/migrations/current")).body;
    }
    const during = await scrape(src.base);
    const after: Json = (await src.api("GET", "/migrations/current")).body;
    if (after.status === "active") {
      assert.equal(statusOf(during), "active");
      const sent = at(during, "ferry_migration_transferred_bytes")!;
      assert.ok(
        sent >= before.ram.transferred && sent <= after.ram.transferred,
        `${before.ram.transferred} <= ${sent} <= ${after.ram.transferred}`,
      );
      assert.equal(at(during, "ferry_migration_total_bytes"), 16 * 2 ** 20);
      const left = at(during, "ferry_migration_remaining_bytes")!;
      assert.ok(left <= before.ram.remaining && left >= after.ram.remaining);
      assert.ok(at(during, "ferry_migration_passes")! >= 1);
      // A rate over a short window is a timing figure (the bench judges it): here, a number.
      const mbps = at(during, "ferry_migration_throughput_mbps")!;
      assert.ok(Number.isFinite(mbps) && mbps >= 0, `throughput ${mbps}`);
    } else console.log(`migration already ${after.status} when scraped; skipped the live checks`);

    const done: Json = await src.waitStatus(/^completed$/);
    await dst.waitStatus(/^completed$/);
    // The finished counter follows the MIGRATION event.
    const final = await waitFor("the finished counter", async () => {
      const s = await scrape(src.base);
      const n = at(s, "ferry_migrations_finished_total", { side: "source", status: "completed" });
      return n !== undefined && s;
    });
    assert.equal(statusOf(final), "completed");
    const ram = done.ram;
    assert.equal(at(final, "ferry_migration_transferred_bytes"), ram.transferred);
    assert.equal(at(final, "ferry_migration_total_bytes"), ram.total);
    assert.equal(at(final, "ferry_migration_remaining_bytes"), 0);
    assert.equal(at(final, "ferry_migration_passes"), ram["dirty-sync-count"]);
    assert.equal(at(final, "ferry_migration_throughput_mbps"), ram.mbps);
    assert.equal(at(final, "ferry_migration_downtime_ms"), done.downtime);
    assert.equal(at(final, "ferry_migration_pages", { kind: "normal" }), ram.normal);
    assert.equal(at(final, "ferry_migration_pages", { kind: "duplicate" }), ram.duplicate);
    assert.ok(ram.normal > 0);
    const main = at(final, "ferry_migration_channel_bytes", { channel: "main" })!;
    const multifd = at(final, "ferry_migration_channel_bytes", { channel: "multifd" })!;
    assert.equal(multifd, ram["multifd-bytes"]);
    assert.equal(main + multifd, ram.transferred);
    assert.equal(at(final, "ferry_machine_runstate", { runstate: "postmigrate" }), 1);
    const finished = (labels: Record<string, string>) =>
      at(final, "ferry_migrations_finished_total", labels);
    assert.equal(finished({ side: "source", status: "completed" }), 1);
    const arrived = await waitFor("the destination's finished counter", async () => {
      const s = await scrape(dst.base);
      const n = at(s, "ferry_migrations_finished_total", {
        side: "destination",
        status: "completed",
      });
      return n !== undefined && s;
    });
    assert.equal(statusOf(arrived), "completed");
    assert.equal(
      at(arrived, "ferry_migrations_finished_total", { side: "destination", status: "completed" }),
      1,
    );
    assert.equal(at(arrived, "ferry_machine_runstate", { runstate: "running" }), 1);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});

Deno.test("requests are counted by matched route, method and code; SSE subscribers counted", async () => {
  // The counting is the app's, not the process's: an in-process agent wired as main.ts wires
  // it (its metrics following its own events), asked through its app.
  const ref: { h?: InProcess } = {};
  const metrics = new FerryMetrics(() => ref.h!.agent);
  const inProcess = ref.h = await openAgent({}, { metrics });
  metrics.follow(
    inProcess.agent.events,
    migrationEventLogger(
      createLogger("info", () => {}),
      (id) => inProcess.agent.get(id)["error-desc"],
    ),
  );
  const get = (url: string) => inProcess.app.request(url);
  const agent = { base: "http://127.0.0.1", api: inProcess.request };
  /** An open event stream (its opening comment read), and how to close it. */
  const openStream = async () => {
    const r = await get(`${agent.base}/events`);
    assert.equal(r.status, 200);
    const reader = r.body!.getReader();
    await reader.read();
    return { close: () => reader.cancel() };
  };
  try {
    const count = (s: Map<string, number>, route: string, method: string, code: number) =>
      at(s, "ferry_http_requests_total", { route, method, code: String(code) }) ?? 0;
    const before = await scrape(agent.base, get);
    assert.equal(at(before, "ferry_sse_subscribers"), 0, "the agent's own follower is not one");
    for (let i = 0; i < 3; i++) await agent.api("GET", "/migrations/current");
    for (const id of ["a", "b"]) {
      assert.equal((await agent.api("GET", `/migrations/${id}`)).status, 404);
    }
    assert.equal((await agent.api("PATCH", "/parameters", { "downtime-limit": -1 })).status, 400);
    assert.equal((await agent.api("GET", "/no/such/path")).status, 404);
    assert.equal((await agent.api("BREW", "/migrations/current")).status, 404);
    const streams = [await openStream(), await openStream()];
    let after: Map<string, number>;
    try {
      after = await scrape(agent.base, get);
      assert.equal(at(after, "ferry_sse_subscribers"), 2);
    } finally {
      await Promise.all(streams.map((s) => s.close()));
    }
    const delta = (route: string, method: string, code: number) =>
      count(after, route, method, code) - count(before, route, method, code);
    assert.equal(delta("/migrations/current", "GET", 200), 3);
    assert.equal(delta("/migrations/{id}", "GET", 404), 2);
    assert.equal(delta("/parameters", "PATCH", 400), 1);
    assert.equal(delta("unmatched", "GET", 404), 1);
    assert.equal(delta("/metrics", "GET", 200), 1);
    assert.equal(delta("unmatched", "OTHER", 404), 1, "unknown methods share one label");
    assert.ok(![...after.keys()].some((k) => /route="\/migrations\/(a|b)"|no\/such/.test(k)));
    await waitFor(
      "the subscribers gone",
      async () => at(await scrape(agent.base, get), "ferry_sse_subscribers") === 0,
    );
  } finally {
    await inProcess.agent.close();
  }
});

Deno.test("the request middleware counts a 500 under its route and logs it at error", async () => {
  const lines: Json[] = [];
  const logger = createLogger("info", (l) => lines.push(JSON.parse(l)));
  const metrics = new FerryMetrics(() => {
    throw new Error("no agent in this test");
  });
  const app = new Hono();
  app.use(metrics.observe(logger));
  app.get("/boom/:n", () => {
    throw new Error("kaput");
  });
  app.get("/fine", (c) => c.text("ok"));
  app.onError((_e, c) => c.text("internal", 500));
  assert.equal((await app.request("/boom/7")).status, 500);
  assert.equal((await app.request("/fine")).status, 200);
  const text = await (await metrics.registry()).getSingleMetricAsString(
    "ferry_http_requests_total",
  );
  const { samples } = parseExposition(text + "\n");
  assert.equal(
    at(samples, "ferry_http_requests_total", { route: "/boom/{n}", method: "GET", code: "500" }),
    1,
  );
  assert.equal(
    at(samples, "ferry_http_requests_total", { route: "/fine", method: "GET", code: "200" }),
    1,
  );
  assert.equal(lines.length, 1);
  assert.deepEqual(
    { level: lines[0].level, msg: lines[0].msg, route: lines[0].route, status: lines[0].status },
    { level: "error", msg: "http error", route: "/boom/{n}", status: 500 },
  );
  assert.equal(lines[0].path, "/boom/7");
});
