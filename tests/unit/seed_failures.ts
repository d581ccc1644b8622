/**
 * Issue 19, item 3: failures as the seed's. Past the seed's migrate_prepare a migration
 * exists (`setup`) and every failure moves it to `failed`: both MIGRATION events, the
 * error in `error-desc`, and the migration in `GET /migrations`. A synchronous failure is
 * also the POST's answer (a problem with `Location` and `x-id`); one found by the data path
 * (connection refused, a missing exec command, a refused TLS handshake) follows a 202. What
 * migrate_prepare checks refuses with no trace. Incoming starts announce `setup`.
 */
import assert from "node:assert/strict";
import { TlsCredsRegistry } from "../../adapters/channels/tls_creds.ts";
import type { Agent } from "../../domain/agent.ts";
import { type InProcess, type Json, withAgent } from "../contract_fixture.ts";
import { tlsListen, withPki } from "../helpers/tls_fixture.ts";
import { REFUSING_PORT } from "../helpers/ports.ts";

/** The MIGRATION statuses published for migration `id`, once one matches `until`. */
async function statusesOf(agent: Agent, id: string, until = /^(failed|completed)$/) {
  const sub = agent.events.subscribe(0);
  const seen: string[] = [];
  const end = Date.now() + 20_000;
  try {
    while (!seen.some((s) => until.test(s))) {
      if (Date.now() > end) throw new Error(`no ${until} event for ${id}; saw ${seen}`);
      const timeout = new Promise<null>((r) => setTimeout(() => r(null), 500));
      const e = await Promise.race([sub.next(), timeout]);
      const data = e?.data as Json;
      if (e?.event === "MIGRATION" && data.id === id) seen.push(data.status);
    }
    return seen;
  } finally {
    sub.close();
  }
}

/** Checks the recorded failure: current, by id, in the list, with its error. */
async function assertRecordedFailure(h: InProcess, id: string, detail: string | RegExp) {
  const current = (await h.request("GET", "/migrations/current")).body;
  assert.equal(current.status, "failed", JSON.stringify(current));
  assert.equal(current["x-id"], id);
  if (typeof detail === "string") assert.equal(current["error-desc"], detail);
  else assert.match(current["error-desc"], detail);
  const one = (await h.request("GET", `/migrations/${id}`)).body;
  assert.equal(one.status, "failed");
  assert.equal(one["x-history"][0].status, "setup");
  assert.equal(one["x-history"].at(-1).status, "failed");
  const list = (await h.request("GET", "/migrations")).body as Json[];
  assert.equal(list[0]["x-id"], id, "the failed migration is the newest in the history");
  assert.equal((await h.request("GET", "/machine")).body.runstate, "running");
}

Deno.test("failed in setup, answered at once: unknown scheme, unusable address, rdma:, a return path on exec:", async () => {
  await withAgent(async (h) => {
    const cases: [string, string][] = [
      // The seed's text, then Ferry's list of the forms it takes (docs/seed-differences.md).
      [
        "foo:bar",
        "Parameter 'uri' expects a valid migration protocol " +
        "(one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
      ],
      ["tcp:127.0.0.1", "missing port in 'tcp:127.0.0.1' (expected tcp:HOST:PORT)"],
      ["tcp:[::1:4444", "invalid IPv6 address in 'tcp:[::1:4444' (missing ']')"],
      ["rdma:127.0.0.1:4444", "RDMA migration is not supported by this build"],
    ];
    for (const [uri, detail] of cases) {
      const r = await h.request("POST", "/migrations", { uri });
      assert.equal(r.status, 400, r.text);
      assert.equal(r.headers.get("content-type"), "application/problem+json");
      assert.equal(r.body.detail, detail);
      const id = r.body["x-id"];
      assert.equal(r.headers.get("location"), `/migrations/${id}`);
      assert.deepEqual(await statusesOf(h.agent, id), ["setup", "failed"]);
      await assertRecordedFailure(h, id, detail);
    }
    // A return path that the channel cannot carry (the seed's migrate_fd_connect).
    await h.request("PATCH", "/capabilities", { "return-path": true });
    const rp = await h.request("POST", "/migrations", { uri: "exec:cat > /dev/null" });
    assert.equal(rp.status, 400, rp.text);
    assert.deepEqual(await statusesOf(h.agent, rp.body["x-id"]), ["setup", "failed"]);
    await assertRecordedFailure(h, rp.body["x-id"], /^Unable to open return-path for postcopy/);
    assert.equal((await h.request("GET", "/migrations")).body.length, cases.length + 1);
  }, { allowExec: true });
});

Deno.test("failed in setup, found by the data path: connection refused, exec command missing", async () => {
  await withAgent(async (h) => {
    const refused = await h.request("POST", "/migrations", {
      uri: `tcp:127.0.0.1:${REFUSING_PORT}`,
    });
    assert.equal(refused.status, 202, refused.text);
    assert.deepEqual(await statusesOf(h.agent, refused.body["x-id"]), ["setup", "failed"]);
    await assertRecordedFailure(h, refused.body["x-id"], /^Failed to connect to 127\.0\.0\.1:/);

    // The shell starts, so (as in the seed) the channel opens; the first writes fail.
    const exec = await h.request("POST", "/migrations", {
      uri: "exec:ferry-no-such-command-19",
    });
    assert.equal(exec.status, 202, exec.text);
    const seen = await statusesOf(h.agent, exec.body["x-id"]);
    assert.equal(seen[0], "setup");
    assert.equal(seen.at(-1), "failed");
    await assertRecordedFailure(h, exec.body["x-id"], /status 127|not found/);
    // A random guest: its stream (1 MiB) cannot fit the pipe (64 KiB), so the writes fail
    // before the stream's end could leave. A zero guest's few KiB could, with the shell slow
    // to exit on a busy host: the source then crossed its point of no return and kept its
    // guest stopped (postmigrate), as it must when it cannot know the stream was not taken.
  }, { allowExec: true, fill: "random" });
});

Deno.test(
  "failed in setup: TLS refused (a server the client does not trust; credentials of the wrong kind)",
  withPki(async (pki) => {
    const tls = new TlsCredsRegistry();
    tls.add(pki.client);
    tls.add(pki.server);
    const listener = await tlsListen(pki.serverUntrusted);
    const accepting = (async () => {
      for (;;) {
        try {
          (await listener.accept()).close();
        } catch (e) {
          if (/closed/i.test(String(e))) return;
        }
      }
    })();
    try {
      await withAgent(async (h) => {
        await h.request("PATCH", "/parameters", { "tls-creds": pki.client.id });
        const r = await h.request("POST", "/migrations", { uri: listener.uri });
        assert.equal(r.status, 202, r.text);
        assert.deepEqual(await statusesOf(h.agent, r.body["x-id"]), ["setup", "failed"]);
        await assertRecordedFailure(h, r.body["x-id"], /certificate|TLS|handshake/i);
        // Server credentials for an outgoing channel: found at once, the migration fails.
        await h.request("PATCH", "/parameters", { "tls-creds": pki.server.id });
        const wrong = await h.request("POST", "/migrations", { uri: listener.uri });
        assert.equal(wrong.status, 400, wrong.text);
        assert.deepEqual(await statusesOf(h.agent, wrong.body["x-id"]), ["setup", "failed"]);
        await assertRecordedFailure(
          h,
          wrong.body["x-id"],
          "Expecting TLS credentials with a client endpoint",
        );
      }, { tls });
    } finally {
      listener.close();
      await accepting;
    }
  }),
);

Deno.test("migrate_prepare refusals leave no trace: no migration, no event, status unchanged", async () => {
  await withAgent(async (h) => {
    const blocker = await h.request("POST", "/blockers", { reason: "device xyz" });
    const before = h.agent.events.subscribe(0);
    const r = await h.request("POST", "/migrations", { uri: "foo:bar" });
    assert.equal(r.status, 409);
    assert.equal(r.body.detail, "device xyz");
    assert.equal(r.body["x-id"], undefined);
    assert.equal(r.headers.get("location"), null);
    const blk = await h.request("POST", "/migrations", { uri: "tcp:127.0.0.1:1", blk: true });
    assert.equal(blk.status, 409);
    await h.request("DELETE", `/blockers/${blocker.body.id}`);
    await h.request("PATCH", "/parameters", { "block-incremental": true });
    const blkOnly = await h.request("POST", "/migrations", { uri: "tcp:127.0.0.1:1", inc: true });
    assert.equal(blkOnly.status, 400);
    assert.equal(
      blkOnly.body.detail,
      "Command options are incompatible with current migration capabilities",
    );
    assert.equal(blkOnly.body["x-id"], undefined);
    assert.deepEqual((await h.request("GET", "/migrations")).body, []);
    assert.deepEqual((await h.request("GET", "/migrations/current")).body, { status: "none" });
    const events = await Promise.race([
      before.nextAll(),
      new Promise<[]>((res) => setTimeout(() => res([]), 100)),
    ]);
    before.close();
    assert.deepEqual(events.filter((e) => e.event === "MIGRATION"), []);
  });
  await withAgent(async (h) => {
    const r = await h.request("POST", "/migrations", { uri: "foo:bar" });
    assert.equal(r.status, 409);
    assert.equal(r.body.detail, "Guest is waiting for an incoming migration");
    assert.deepEqual((await h.request("GET", "/migrations")).body, []);
  }, { incoming: "defer" });
});

Deno.test("incoming starts announce setup: --incoming URI, and migrate-incoming after defer", async () => {
  await withAgent(async (h) => {
    const first = h.agent.query();
    assert.equal(first.status, "setup");
    assert.deepEqual(await statusesOf(h.agent, first["x-id"]!, /^setup$/), ["setup"]);
  }, { incoming: "tcp:127.0.0.1:0" });
  await withAgent(async (h) => {
    const r = await h.request("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" });
    assert.equal(r.status, 202, r.text);
    assert.equal(r.body["x-side"], "destination");
    assert.deepEqual(await statusesOf(h.agent, r.body["x-id"], /^setup$/), ["setup"]);
  }, { incoming: "defer" });
});
