/**
 * Issue 21, items 4 and 5 (the outside of COLO): x-colo can be set (not with postcopy or
 * multifd), `GET /colo` outside COLO, `POST /colo/lost-heartbeat` refused outside COLO with a
 * problem+json 409, and COLO_EXIT documented among the events.
 */
import assert from "node:assert/strict";
import { withAgent } from "../contract_fixture.ts";

Deno.test("colo: x-colo is settable, GET /colo says none, lost-heartbeat outside COLO is 409", async () => {
  await withAgent(async ({ request }) => {
    const on = await request("PATCH", "/capabilities", { "x-colo": true });
    assert.equal(on.status, 200, on.text);
    assert.equal(on.body["x-colo"], true);
    const both = await request("PATCH", "/capabilities", { "postcopy-ram": true });
    assert.equal(both.status, 400);
    assert.equal(both.body.detail, "COLO is not compatible with postcopy");
    const status = await request("GET", "/colo");
    assert.equal(status.status, 200);
    assert.deepEqual(status.body, { mode: "none", "last-mode": "none", reason: "none" });
    const lost = await request("POST", "/colo/lost-heartbeat");
    assert.equal(lost.status, 409);
    assert.equal(lost.headers.get("content-type"), "application/problem+json");
    assert.equal(lost.body.detail, "VM is not in COLO mode");
    assert.equal((await request("GET", "/capabilities")).body["postcopy-ram"], false);
    const file = await request("POST", "/migrations", { uri: "file:/tmp/ferry-colo-never" });
    assert.equal(file.status, 400);
    assert.equal(
      file.body.detail,
      "COLO needs a return path: file: channels carry one direction only",
    );
  });
});

Deno.test("colo: COLO_EXIT and GET /colo are in the contract", async () => {
  await withAgent(async ({ request }) => {
    const doc = (await request("GET", "/openapi.json")).body;
    assert.ok(doc.paths["/colo"]?.get, "GET /colo documented");
    assert.ok(doc.paths["/colo/lost-heartbeat"]?.post, "POST /colo/lost-heartbeat documented");
    const events = doc.paths["/events"].get["x-events"];
    assert.deepEqual(events.COLO_EXIT, { $ref: "#/components/schemas/ColoExitEvent" });
    assert.deepEqual(
      doc.components.schemas.ColoStatus.properties.reason.enum,
      ["none", "request", "error", "processing"],
    );
  });
});
