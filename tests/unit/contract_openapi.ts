/**
 * Issue 3, item 7: the contract file is generated from the route definitions without an
 * agent, the committed openapi.yaml and SDK types are current, every endpoint of the
 * contract is in it, and the agent serves it (JSON, YAML, and Swagger UI with local assets).
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import { generate } from "../../scripts/gen_openapi.ts";
import { openApiDocument } from "../../routes/app.ts";
import { type Json, withAgent } from "../contract_fixture.ts";

const ROOT = new URL("../../", import.meta.url);

/** contract.md's endpoint table, beyond the served documents themselves. */
const CONTRACT = [
  "GET /migrations/current",
  "POST /migrations",
  "GET /migrations",
  "GET /migrations/{id}",
  "POST /migrations/current/cancel",
  "POST /migrations/incoming",
  "GET /capabilities",
  "PATCH /capabilities",
  "GET /parameters",
  "PATCH /parameters",
  "GET /events",
  "GET /machine",
  "POST /machine/stop",
  "POST /machine/cont",
  "GET /machine/digest",
  "GET /blockers",
  "POST /blockers",
  "DELETE /blockers/{id}",
  "GET /globals",
  "GET /healthz",
];

Deno.test("openapi.yaml and sdk/ferry_api.d.ts are what `deno task openapi` generates", async () => {
  const { yaml, sdk } = await generate();
  assert.equal(
    await Deno.readTextFile(new URL("openapi.yaml", ROOT)),
    yaml,
    "run `deno task openapi`",
  );
  assert.equal(
    await Deno.readTextFile(new URL("sdk/ferry_api.d.ts", ROOT)),
    sdk,
    "run `deno task openapi`",
  );
});

Deno.test("the document is OpenAPI 3.1 and covers the contract's endpoints with problem+json errors", () => {
  const doc = openApiDocument() as Json;
  assert.equal(doc.openapi, "3.1.0");
  const ops = new Set<string>();
  const ids = new Set<string>();
  for (const [path, item] of Object.entries(doc.paths as Record<string, Json>)) {
    for (const [method, op] of Object.entries(item as Record<string, Json>)) {
      ops.add(`${method.toUpperCase()} ${path}`);
      assert.ok(
        op.operationId && !ids.has(op.operationId),
        `${method} ${path}: unique operationId`,
      );
      ids.add(op.operationId);
      for (const [status, res] of Object.entries(op.responses as Record<string, Json>)) {
        if (Number(status) >= 400) {
          assert.deepEqual(
            Object.keys(res.content),
            ["application/problem+json"],
            `${method} ${path} ${status}`,
          );
        }
      }
    }
  }
  for (const op of CONTRACT) assert.ok(ops.has(op), `missing ${op}`);
  for (
    const name of [
      "MigrationInfo",
      "MigrationEvent",
      "MigrationPassEvent",
      "Problem",
      "MigrationParameters",
    ]
  ) {
    assert.ok(doc.components.schemas[name], `schema ${name}`);
  }
  const events = doc.paths["/events"].get;
  // The contract's events (Ferry's own come on top; events_catalogue_test checks them all).
  for (const name of ["MIGRATION", "MIGRATION_PASS", "progress"]) {
    assert.ok(events["x-events"][name], `event ${name} documented`);
  }
  assert.equal(events.responses["200"].content, undefined, "no typed content on the SSE response");
  assert.ok(doc.components.securitySchemes.bearerAuth);
  assert.deepEqual(doc.paths["/healthz"].get.security, []);
});

Deno.test("the agent serves the committed document as JSON and YAML, its server itself", async () => {
  const committed = parse(await Deno.readTextFile(new URL("openapi.yaml", ROOT)));
  assert.deepEqual(committed.servers.map((s: { url: string }) => s.url), [
    "http://127.0.0.1:8080",
  ]);
  await withAgent(async ({ request }) => {
    // Asked as http://localhost (the in-process app's origin), the one server is that.
    const served = {
      ...committed,
      servers: [{
        url: "http://localhost",
        description: "This agent (the one serving this document)",
      }],
    };
    const json = await request("GET", "/openapi.json");
    assert.equal(json.status, 200);
    assert.deepEqual(json.body, served);
    const yaml = await request("GET", "/openapi.yaml");
    assert.equal(yaml.status, 200);
    assert.match(yaml.headers.get("content-type")!, /^application\/yaml/);
    assert.deepEqual(parse(yaml.text), served);
  });
});

Deno.test("/docs is Swagger UI whose every asset comes from the agent itself", async () => {
  await withAgent(async ({ request }) => {
    const page = await request("GET", "/docs");
    assert.equal(page.status, 200);
    assert.match(page.headers.get("content-type")!, /^text\/html/);
    const urls = [...page.text.matchAll(/(?:src|href)="([^"]+)"/g)].map((m) => m[1]);
    assert.ok(urls.length >= 2, page.text);
    assert.ok(!/https?:\/\//.test(page.text), "no absolute (CDN) URL in the page");
    assert.match(page.text, /url: '\/openapi\.json'/);
    for (const url of urls) {
      assert.ok(url.startsWith("/"), url);
      const asset = await request("GET", url);
      assert.equal(asset.status, 200, url);
      assert.match(
        asset.headers.get("content-type")!,
        url.endsWith(".css") ? /^text\/css/ : /^text\/javascript/,
      );
      assert.ok(asset.text.length > 10_000, `${url} is the real asset`);
    }
    assert.equal(
      (await request("GET", "/docs/swagger-ui-dist/package.json")).status,
      404,
      "only the UI assets",
    );
  });
});
