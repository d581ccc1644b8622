/**
 * Issue 3, item 8: a typed client generated from openapi.yaml (openapi-typescript types
 * in sdk/, openapi-fetch) drives a whole migration between two real
 * agents — parameters, capabilities, a dry run, the start, watching, the result — and
 * every response body and every SSE event is validated against openapi.yaml with Ajv.
 */
import assert from "node:assert/strict";
import { type components, ferryClient } from "../sdk/client.ts";
import { ContractValidator } from "./helpers/contract_validator.ts";
import { type TestAgent } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { recordEvents } from "./helpers/sse.ts";

type MigrationInfo = components["schemas"]["MigrationInfo"];

/** POST /migrations answers a MigrationInfo (202) or a dry-run result (200). */
function asInfo(data: MigrationInfo | { "dry-run": true } | undefined): MigrationInfo {
  assert.ok(data && "status" in data, JSON.stringify(data));
  return data;
}

Deno.test("sdk: a typed client migrates a guest between two real agents; every reply matches openapi.yaml", async () => {
  const contract = new ContractValidator(
    await Deno.readTextFile(new URL("../openapi.yaml", import.meta.url)),
  );
  const agents: TestAgent[] = [];
  try {
    // 16 MiB: a whole migration with passes (MIGRATION_PASS), all a client sees of one.
    const [dst, src] = await startLocalAgents(
      (a) => (agents.push(a), a),
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", "--workload", "increment"],
    );
    const source = ferryClient({ baseUrl: src.base, middleware: [contract.middleware()] });
    const destination = ferryClient({ baseUrl: dst.base, middleware: [contract.middleware()] });

    // Parameters, guarded by their ETag.
    const params = await source.GET("/parameters");
    assert.equal(params.data?.["downtime-limit"], 300);
    const etag = params.response.headers.get("etag")!;
    const set = await source.PATCH("/parameters", {
      params: { header: { "if-match": etag } },
      body: { "max-bandwidth": 4 * 2 ** 30, "downtime-limit": 500 },
    });
    assert.equal(set.data?.["downtime-limit"], 500);
    const stale = await source.PATCH("/parameters", {
      params: { header: { "if-match": etag } },
      body: { "downtime-limit": 600 },
    });
    assert.equal(stale.response.status, 412);
    assert.match(stale.error?.detail ?? "", /If-Match/);
    const bad = await source.PATCH("/parameters", { body: { "compress-level": 10 } });
    assert.equal(bad.error?.detail, "Parameter 'compress_level' expects a value between 0 and 9");

    // Capabilities.
    const caps = await source.PATCH("/capabilities", { body: { events: true } });
    assert.equal(caps.data?.events, true);
    assert.equal(
      (await destination.PATCH("/capabilities", { body: { events: true } })).data?.events,
      true,
    );
    assert.deepEqual((await source.GET("/globals")).data?.["only-migratable"], false);
    assert.deepEqual((await source.GET("/blockers")).data, []);

    const events = await recordEvents(src.base);
    const dstEvents = await recordEvents(dst.base);
    try {
      const uri = dst.incomingUri!;
      const dry = await source.POST("/migrations", {
        params: { query: { "dry-run": "true" } },
        body: { uri },
      });
      assert.deepEqual(dry.data, { "dry-run": true, ok: true });

      const started = await source.POST("/migrations", {
        params: { header: { "idempotency-key": "sdk-run-1" } },
        body: { uri },
      });
      assert.equal(started.response.status, 202);
      const id = asInfo(started.data)["x-id"]!;
      assert.equal(started.response.headers.get("location"), `/migrations/${id}`);
      const replay = await source.POST("/migrations", {
        params: { header: { "idempotency-key": "sdk-run-1" } },
        body: { uri },
      });
      assert.equal(replay.response.headers.get("idempotent-replayed"), "true");
      assert.equal(asInfo(replay.data)["x-id"], id);

      // Watch it.
      let info = asInfo(started.data);
      const end = Date.now() + 120_000;
      while (!/completed|failed|cancelled/.test(info.status)) {
        assert.ok(Date.now() < end, `still ${info.status}`);
        await new Promise((r) => setTimeout(r, 100));
        info = (await source.GET("/migrations/{id}", { params: { path: { id } } })).data!;
        const current = (await source.GET("/migrations/current")).data!;
        assert.equal(current["x-id"], id);
      }
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal(info.ram?.total, 16 * 2 ** 20);
      assert.ok((info.ram?.["dirty-sync-count"] ?? 0) >= 1);
      assert.ok(info.downtime !== undefined && info["total-time"] !== undefined);

      let arrived = (await destination.GET("/migrations/current")).data!;
      while (arrived.status !== "completed") {
        assert.ok(Date.now() < end && arrived.status !== "failed", `destination ${arrived.status}`);
        await new Promise((r) => setTimeout(r, 100));
        arrived = (await destination.GET("/migrations/current")).data!;
      }
      assert.equal((await destination.GET("/machine")).data?.runstate, "running");
      assert.equal((await source.GET("/machine")).data?.runstate, "postmigrate");
      const list = (await source.GET("/migrations")).data!;
      assert.deepEqual(list.map((m) => m["x-id"]), [id]);
      assert.equal(
        (await source.GET("/migrations/{id}", { params: { path: { id: "out-none" } } })).response
          .status,
        404,
      );

      await events.waitFor((e) =>
        e.event === "MIGRATION" && (e.data as { status: string }).status === "completed"
      );
      await dstEvents.waitFor((e) =>
        e.event === "MIGRATION" && (e.data as { status: string }).status === "completed"
      );
      const statuses = events.events.filter((e) => e.event === "MIGRATION").map((e) =>
        (e.data as { status: string }).status
      );
      assert.deepEqual(statuses, ["setup", "active", "completed"]);
      for (const e of [...events.events, ...dstEvents.events]) {
        const ref: string | undefined = contract.doc.paths["/events"].get["x-events"][e.event]
          ?.$ref;
        assert.ok(ref, `undocumented event ${e.event}`);
        contract.assertComponent(
          ref.replace("#/components/schemas/", ""),
          e.data,
          `event ${e.event} #${e.id}`,
        );
      }
      assert.ok(events.events.some((e) => e.event === "MIGRATION_PASS"));
    } finally {
      await events.close();
      await dstEvents.close();
    }
    // Blockers through the client, then a migrate refused with the reason (the source's guest
    // runs again first: from postmigrate the seed refuses for that reason before blockers).
    assert.equal((await source.POST("/machine/cont")).response.status, 202);
    const blocker = await source.POST("/blockers", { body: { reason: "sdk says no" } });
    assert.equal(blocker.response.status, 201);
    const refused = await source.POST("/migrations", { body: { uri: "tcp:127.0.0.1:1" } });
    assert.equal(refused.error?.detail, "sdk says no");
    const removed = await source.DELETE("/blockers/{id}", {
      params: { path: { id: blocker.data!.id } },
    });
    assert.equal(removed.response.status, 204);
    assert.ok(contract.checked >= 30, `validated ${contract.checked} replies and events`);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});
