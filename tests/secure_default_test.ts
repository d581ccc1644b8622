/**
 * Issue 16 through real agents: a DNS-rebinding request (foreign Host and Origin) gets 403
 * and runs nothing; a foreign Origin is refused on GET, POST, the event stream and the
 * dashboard; off loopback the agent will not start without a token; the token is never
 * logged; `exec:` needs `--allow-exec` everywhere a URI is taken (migrate, resume,
 * `--incoming`, migrate-incoming, migrate-recover).
 */
import assert from "node:assert/strict";
import { type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { rawRequest } from "./helpers/raw_http.ts";
import { refusedStart } from "./helpers/refused_start.ts";

const JSON_TYPE = { "content-type": "application/json" };

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Waits until `path` exists; throws naming it after `timeoutMs`. */
async function waitForFile(path: string, timeoutMs = 30_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await exists(path))) {
    if (Date.now() > end) throw new Error(`${path} was not created within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function withTempDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-secure-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A 403 problem whose detail starts by naming `header`. */
function assertRefused(status: number, type: string | null, body: string, header: string) {
  assert.equal(status, 403, body);
  assert.equal(type, "application/problem+json");
  const problem = JSON.parse(body);
  assert.equal(problem.status, 403);
  assert.match(problem.detail, new RegExp(`^${header} '`), problem.detail);
}

async function fetchWith(
  agent: TestAgent,
  method: string,
  path: string,
  headers: Record<string, string>,
  body?: unknown,
): Promise<{ status: number; type: string | null; text: string }> {
  const r = await fetch(agent.base + path, {
    method,
    headers: { ...(body === undefined ? {} : JSON_TYPE), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const type = r.headers.get("content-type");
  if (type === "text/event-stream") {
    await r.body?.cancel();
    return { status: r.status, type, text: "" };
  }
  return { status: r.status, type, text: await r.text() };
}

Deno.test("a DNS-rebinding request gets 403 and runs nothing, even with --allow-exec", async () => {
  await withTempDir(async (dir) => {
    await withAgents(async (track) => {
      const agent = track(await startLocalAgent(["--ram", "4M", "--allow-exec"]));
      const pwned = `${dir}/pwned`;
      const send = (headers: Record<string, string>, file: string) =>
        rawRequest(
          agent.base,
          "POST",
          "/migrations",
          { ...JSON_TYPE, ...headers },
          JSON.stringify({ uri: `exec:touch ${file}` }),
        );
      // The request from the issue: the page's own name in Host, its origin in Origin.
      const rebound = await send(
        { host: "evil.example:80", origin: "http://evil.example" },
        pwned,
      );
      assertRefused(rebound.status, rebound.headers.get("content-type")!, rebound.body, "Host");
      const hostOnly = await send({ host: "evil.example" }, pwned);
      assertRefused(hostOnly.status, hostOnly.headers.get("content-type")!, hostOnly.body, "Host");
      const originOnly = await send({ origin: "http://evil.example" }, pwned);
      assertRefused(
        originOnly.status,
        originOnly.headers.get("content-type")!,
        originOnly.body,
        "Origin",
      );
      assert.deepEqual((await agent.api("GET", "/migrations")).body, [], "nothing was started");
      assert.equal((await agent.api("GET", "/migrations/current")).body.status, "none");
      // The same request with the agent's own Host runs: so the refusals above were what
      // kept the command from running (this one's file appears, the first one's never).
      const control = `${dir}/control`;
      const ran = await send({}, control);
      assert.equal(ran.status, 202, ran.body);
      await waitForFile(control);
      await agent.waitStatus(/completed|failed/);
      assert.equal(await exists(pwned), false, "a refused request ran its command");
    });
  });
});

Deno.test("a foreign Origin is refused on GET, POST, the event stream and the dashboard", async () => {
  await withAgents(async (track) => {
    const agent = track(await startLocalAgent(["--ram", "4M"]));
    const evil = { origin: "http://evil.example" };
    for (const [method, path] of [["GET", "/parameters"], ["GET", "/events"], ["GET", "/"]]) {
      const r = await fetchWith(agent, method, path, evil);
      assertRefused(r.status, r.type, r.text, "Origin");
    }
    const stop = await fetchWith(agent, "POST", "/machine/stop", evil);
    assertRefused(stop.status, stop.type, stop.text, "Origin");
    const patch = await fetchWith(agent, "PATCH", "/parameters", evil, { "downtime-limit": 999 });
    assertRefused(patch.status, patch.type, patch.text, "Origin");
    // Another port on the same host is another origin (another local web app).
    const port = await fetchWith(agent, "GET", "/events", { origin: "http://127.0.0.1:1" });
    assertRefused(port.status, port.type, port.text, "Origin");
    const nul = await fetchWith(agent, "GET", "/parameters", { origin: "null" });
    assertRefused(nul.status, nul.type, nul.text, "Origin");
    // A cross-site request without Origin (an <img>, a no-cors fetch): Sec-Fetch-Site.
    const img = await fetchWith(agent, "GET", "/machine/digest", {
      "sec-fetch-site": "cross-site",
      "sec-fetch-mode": "no-cors",
    });
    assertRefused(img.status, img.type, img.text, "Sec-Fetch-Site");
    // Nothing changed.
    assert.equal((await agent.api("GET", "/machine")).body.runstate, "running");
    assert.equal((await agent.api("GET", "/parameters")).body["downtime-limit"], 300);
    // The agent's own origin (the dashboard's requests) passes, SSE included.
    const own = { origin: agent.base };
    assert.equal((await fetchWith(agent, "GET", "/events", own)).status, 200);
    assert.equal((await fetchWith(agent, "POST", "/machine/stop", own)).status, 202);
    assert.equal((await fetchWith(agent, "POST", "/machine/cont", own)).status, 202);
    const link = await fetchWith(agent, "GET", "/", {
      "sec-fetch-site": "cross-site",
      "sec-fetch-mode": "navigate",
    });
    assert.equal(link.status, 200, "following a link to the dashboard from another site works");
  });
});

Deno.test("Host must name the agent: loopback names, --api-host names; /healthz is open", async () => {
  await withAgents(async (track) => {
    const agent = track(await startLocalAgent(["--ram", "4M", "--api-host", "ferry.test"]));
    const port = new URL(agent.base).port;
    const get = (host: string, path = "/migrations/current", extra = {}) =>
      rawRequest(agent.base, "GET", path, { host, ...extra });
    for (const host of [`127.0.0.1:${port}`, `localhost:${port}`, `ferry.test:${port}`]) {
      assert.equal((await get(host)).status, 200, host);
    }
    const named = await get(`ferry.test:${port}`, "/parameters", {
      origin: `http://ferry.test:${port}`,
    });
    assert.equal(named.status, 200, "an --api-host name's own origin");
    for (const host of ["evil.example", `evil.example:${port}`, "10.9.9.9", "ferry.test.evil"]) {
      const r = await get(host);
      assertRefused(r.status, r.headers.get("content-type")!, r.body, "Host");
    }
    const dashboard = await get("evil.example", "/");
    assertRefused(dashboard.status, dashboard.headers.get("content-type")!, dashboard.body, "Host");
    const health = await get("evil.example", "/healthz");
    assert.equal(health.status, 200, "probes need no particular Host");
  });
});

Deno.test("off loopback without a token the agent refuses to start, before it listens", async () => {
  for (const listen of ["0.0.0.0:0", "[::]:0"]) {
    const r = await refusedStart(["--listen", listen, "--ram", "4M"], { FERRY_API_TOKEN: "" });
    assert.equal(r.listened, false, `it listened on ${listen}`);
    assert.equal(r.code, 2, "a usage error");
    assert.match(r.stderr, /is not a loopback address/);
    assert.match(r.stderr, /--api-token TOKEN \(or FERRY_API_TOKEN\)/);
  }
});

Deno.test("the token is never logged; a wrong one gets 401 and changes nothing", async () => {
  const token = "t0ken-that-must-not-leak-4b1d";
  await withAgents(async (track) => {
    const agent = track(
      await startLocalAgent(["--ram", "4M", "--api-token", token, "--log-level", "debug"]),
    );
    const wrong = await fetchWith(agent, "PATCH", "/parameters", {
      authorization: `Bearer ${token.slice(0, -1)}x`,
    }, { "downtime-limit": 999 });
    assert.equal(wrong.status, 401);
    assert.equal(JSON.parse(wrong.text).detail, "Invalid API token");
    const right = { authorization: `Bearer ${token}` };
    const after = await fetchWith(agent, "GET", "/parameters", right);
    assert.equal(JSON.parse(after.text)["downtime-limit"], 300);
    await fetchWith(agent, "POST", "/migrations", right, { uri: "tcp:127.0.0.1:1" });
    await agent.stop();
    assert.ok(agent.log().includes('"msg":"listening"'), "the log was captured");
    assert.equal(agent.log().includes(token), false, "the token appeared in the log");
  });
});

Deno.test("exec: without --allow-exec is refused wherever a URI is taken, naming the flag", async () => {
  await withTempDir(async (dir) => {
    await withAgents(async (track) => {
      const mark = `${dir}/ran`;
      const src = track(await startLocalAgent(["--ram", "4M"]));
      for (const path of ["/migrations", "/migrations?dry-run=true"]) {
        const r = await src.api("POST", path, { uri: `exec:touch ${mark}` });
        assert.equal(r.status, 409, JSON.stringify(r.body));
        assert.equal(r.headers.get("content-type"), "application/problem+json");
        assert.match(r.body.detail, /--allow-exec/);
      }
      const resume = await src.api("POST", "/migrations", {
        uri: `exec:touch ${mark}`,
        resume: true,
      });
      assert.equal(resume.status, 409);
      assert.match(resume.body.detail, /--allow-exec/);
      assert.deepEqual((await src.api("GET", "/migrations")).body, [], "nothing was started");

      const dst = track(await startLocalAgent(["--ram", "4M", "--incoming", "defer"]));
      const incoming = await dst.api("POST", "/migrations/incoming", { uri: `exec:touch ${mark}` });
      assert.equal(incoming.status, 409);
      assert.match(incoming.body.detail, /--allow-exec/);
      // migrate-recover: the permission is checked first, whatever the incoming side's state
      // (here none: the seed's own refusal would say postcopy is not paused).
      const recover = await dst.api("POST", "/migrations/incoming/recover", {
        uri: `exec:touch ${mark}`,
      });
      assert.equal(recover.status, 409, JSON.stringify(recover.body));
      assert.equal(recover.headers.get("content-type"), "application/problem+json");
      assert.match(recover.body.detail, /start it with --allow-exec/);
      assert.deepEqual((await dst.api("GET", "/migrations/current")).body, { status: "none" });
      // Nothing changed: the deferred incoming side still takes its one migrate-incoming.
      const tcp = await dst.api("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" });
      assert.equal(tcp.status, 202, JSON.stringify(tcp.body));

      const start = await refusedStart([
        "--listen",
        "127.0.0.1:0",
        "--ram",
        "4M",
        "--incoming",
        `exec:touch ${mark}`,
      ]);
      assert.equal(start.listened, false);
      assert.equal(start.code, 2, "a usage error");
      assert.match(start.stderr, /--allow-exec/);
      assert.equal(await exists(mark), false, "an exec: command ran");
    });
  });
});
