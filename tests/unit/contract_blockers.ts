/**
 * Issue 3, item 5: migration blockers and globals (the seed's migrate_add_blocker,
 * migration_is_blocked, migration_global_dump), and what a running migration refuses.
 */
import assert from "node:assert/strict";
import { MIGRATION_ACTIVE } from "../../domain/errors.ts";
import { parseGlobals } from "../../domain/globals.ts";
import { type Json, withAgent } from "../contract_fixture.ts";

Deno.test("blockers: add, list, block migrate with the newest reason, delete", async () => {
  await withAgent(async ({ request }) => {
    assert.deepEqual((await request("GET", "/blockers")).body, []);
    const a = await request("POST", "/blockers", {
      reason: "vhost-user device without migration support",
    });
    assert.equal(a.status, 201);
    assert.deepEqual(Object.keys(a.body).sort(), ["id", "reason"]);
    assert.equal(a.headers.get("location"), `/blockers/${a.body.id}`);
    const b = await request("POST", "/blockers", { reason: "second device" });
    assert.notEqual(a.body.id, b.body.id);
    assert.deepEqual((await request("GET", "/blockers")).body, [a.body, b.body]);
    const refused = await request("POST", "/migrations", { uri: "tcp:127.0.0.1:4444" });
    assert.equal(refused.status, 409);
    assert.equal(refused.body.detail, "second device", "the newest blocker, as the seed prepends");
    assert.equal((await request("DELETE", `/blockers/${b.body.id}`)).status, 204);
    const still = await request("POST", "/migrations", { uri: "tcp:127.0.0.1:4444" });
    assert.equal(still.body.detail, "vhost-user device without migration support");
    assert.equal((await request("DELETE", `/blockers/${a.body.id}`)).status, 204);
    const gone = await request("DELETE", `/blockers/${a.body.id}`);
    assert.equal(gone.status, 404);
    assert.equal(gone.headers.get("content-type"), "application/problem+json");
    const dry = await request("POST", "/migrations?dry-run=true", { uri: "tcp:127.0.0.1:4444" });
    assert.equal(dry.status, 200, "unblocked");
    assert.equal((await request("POST", "/blockers", { reason: "" })).status, 400);
  });
});

Deno.test("blockers: refused under --only-migratable with the seed's text", async () => {
  await withAgent(async ({ request }) => {
    const r = await request("POST", "/blockers", { reason: "usb-host device" });
    assert.equal(r.status, 409);
    assert.equal(
      r.body.detail,
      "disallowing migration blocker (--only_migratable) for: usb-host device",
    );
    assert.deepEqual((await request("GET", "/blockers")).body, []);
    assert.equal((await request("GET", "/globals")).body["only-migratable"], true);
  }, { onlyMigratable: true });
});

Deno.test("globals: the seed's defaults, and what --global set", async () => {
  await withAgent(async ({ request }) => {
    assert.deepEqual((await request("GET", "/globals")).body, {
      "store-global-state": true,
      "only-migratable": false,
      "send-configuration": true,
      "send-section-footer": true,
      "decompress-error-check": true,
    });
  });
  const g = parseGlobals(["migration.store-global-state=off", "migration.send-section-footer=no"]);
  await withAgent(async ({ request }) => {
    const body = (await request("GET", "/globals")).body;
    assert.equal(body["store-global-state"], false);
    assert.equal(body["send-section-footer"], false);
    assert.equal(body["send-configuration"], true);
  }, { globals: g.flags });
});

Deno.test("while a migration runs: migrate, dry run, capabilities, blockers and stop are refused", async () => {
  await withAgent(async (dst) => {
    await withAgent(async (src) => {
      // A slow link keeps the migration running long enough to look at it.
      assert.equal(
        (await src.request("PATCH", "/parameters", { "max-bandwidth": 2 << 20 })).status,
        200,
      );
      const start = await src.request("POST", "/migrations", { uri: dst.agent.incomingUri });
      assert.equal(start.status, 202, start.text);
      const again = await src.request("POST", "/migrations", { uri: dst.agent.incomingUri });
      assert.equal(again.status, 409);
      assert.equal(again.body.detail, MIGRATION_ACTIVE);
      const dry = await src.request("POST", "/migrations?dry-run=true", { uri: "foo:bar" });
      assert.equal(dry.status, 409);
      assert.deepEqual(dry.body.errors.map((e: Json) => e.detail), [
        MIGRATION_ACTIVE,
        "Parameter 'uri' expects a valid migration protocol (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH)",
      ]);
      const caps = await src.request("PATCH", "/capabilities", { events: true });
      assert.equal(caps.status, 409);
      assert.equal(caps.body.detail, MIGRATION_ACTIVE);
      const blocker = await src.request("POST", "/blockers", { reason: "late device" });
      assert.equal(blocker.status, 409);
      assert.equal(
        blocker.body.detail,
        "disallowing migration blocker (migration in progress) for: late device",
      );
      assert.equal((await src.request("POST", "/machine/stop")).status, 409);
      // max-bandwidth applies live: lift the cap and the migration finishes.
      assert.equal((await src.request("PATCH", "/parameters", { "max-bandwidth": 0 })).status, 200);
      const end = Date.now() + 30_000;
      let status = "";
      while (Date.now() < end) {
        status = (await src.request("GET", "/migrations/current")).body.status;
        if (/completed|failed|cancelled/.test(status)) break;
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.equal(status, "completed");
      assert.equal((await src.request("POST", "/blockers", { reason: "now idle" })).status, 201);
    }, { blocks: [{ name: "pc.ram", size: 16 << 20 }], fill: "random" });
  }, { blocks: [{ name: "pc.ram", size: 16 << 20 }], incoming: "tcp:127.0.0.1:0" });
});
