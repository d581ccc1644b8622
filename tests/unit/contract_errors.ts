/**
 * Issue 3, item 3: every client error is application/problem+json with a detail and a
 * QMP class; unknown members and wrong types name the member; malformed JSON and
 * non-object bodies are 400; bodies over 64 KiB are 413; non-JSON bodies 415.
 */
import assert from "node:assert/strict";
import { type Reply, withAgent } from "../contract_fixture.ts";

function assertProblem(r: Reply, status: number, detail?: string | RegExp): void {
  assert.equal(r.status, status, r.text);
  assert.equal(r.headers.get("content-type"), "application/problem+json");
  assert.equal(r.body.status, status);
  assert.equal(typeof r.body.title, "string");
  assert.equal(typeof r.body.type, "string");
  assert.equal(typeof r.body.class, "string");
  if (typeof detail === "string") assert.equal(r.body.detail, detail);
  else if (detail) assert.match(r.body.detail, detail);
}

Deno.test("unknown members and wrong types are 400 naming the member, on every JSON body", async () => {
  await withAgent(async ({ request }) => {
    const bodies: [string, string, unknown, string][] = [
      ["PATCH", "/parameters", { "nonsense": 1 }, "Parameter 'nonsense' is unexpected"],
      [
        "PATCH",
        "/parameters",
        { "downtime-limit": "300" },
        "Invalid parameter type for 'downtime-limit', expected: number",
      ],
      [
        "PATCH",
        "/parameters",
        { "downtime-limit": 1.5 },
        "Invalid parameter type for 'downtime-limit', expected: integer",
      ],
      [
        "PATCH",
        "/parameters",
        { "compress-wait-thread": 1 },
        "Invalid parameter type for 'compress-wait-thread', expected: boolean",
      ],
      [
        "PATCH",
        "/capabilities",
        { "xbzrle": "yes" },
        "Invalid parameter type for 'xbzrle', expected: boolean",
      ],
      ["PATCH", "/capabilities", { "fast": true }, "Parameter 'fast' is unexpected"],
      [
        "POST",
        "/migrations",
        { "uri": "tcp:127.0.0.1:1", "speed": 1 },
        "Parameter 'speed' is unexpected",
      ],
      ["POST", "/migrations", { "uri": 4 }, "Invalid parameter type for 'uri', expected: string"],
      ["POST", "/migrations", {}, "Parameter 'uri' is missing"],
      [
        "POST",
        "/migrations/incoming",
        { "uri": "tcp:127.0.0.1:0", "x": 1 },
        "Parameter 'x' is unexpected",
      ],
      [
        "POST",
        "/blockers",
        { "reason": false },
        "Invalid parameter type for 'reason', expected: string",
      ],
      ["POST", "/blockers", { "reason": "r", "id": "mine" }, "Parameter 'id' is unexpected"],
    ];
    for (const [method, path, body, detail] of bodies) {
      assertProblem(await request(method, path, body), 400, detail);
    }
  });
});

Deno.test("malformed JSON and non-object bodies are 400", async () => {
  await withAgent(async ({ request }) => {
    for (const path of ["/parameters", "/capabilities"]) {
      assertProblem(
        await request("PATCH", path, '{"downtime-limit": '),
        400,
        "Malformed JSON in request body",
      );
      for (const text of ["[]", "1", "null", '"x"', "true"]) {
        assertProblem(
          await request("PATCH", path, text),
          400,
          /^Invalid request body: expected a JSON object/,
        );
      }
    }
    assertProblem(
      await request("POST", "/migrations", "{uri: tcp}"),
      400,
      "Malformed JSON in request body",
    );
  });
});

Deno.test("bodies over 64 KiB are 413; exactly 64 KiB is read", async () => {
  await withAgent(async ({ request, app }) => {
    const json = '{"downtime-limit": 301}';
    const exact = json + " ".repeat(64 * 1024 - json.length);
    const ok = await request("PATCH", "/parameters", exact);
    assert.equal(ok.status, 200, ok.text);
    assertProblem(
      await request("PATCH", "/parameters", exact + " "),
      413,
      "Request body larger than 65536 bytes",
    );
    // A streamed body with no length is counted as it arrives.
    const stream = new ReadableStream<Uint8Array>({
      start(c) {
        for (let i = 0; i < 100; i++) c.enqueue(new Uint8Array(1024).fill(0x20));
        c.close();
      },
    });
    const r = await app.request("/parameters", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: stream,
    });
    assert.equal(r.status, 413);
    assert.equal(r.headers.get("content-type"), "application/problem+json");
    await r.body?.cancel();
    assert.equal((await request("GET", "/parameters")).body["downtime-limit"], 301);
  });
});

Deno.test("non-JSON bodies are 415; JSON merge patches are accepted", async () => {
  await withAgent(async ({ request }) => {
    assertProblem(
      await request("PATCH", "/parameters", '{"downtime-limit": 400}', {
        "content-type": "text/plain",
      }),
      415,
      /application\/json/,
    );
    const merge = await request("PATCH", "/parameters", '{"downtime-limit": 400}', {
      "content-type": "application/merge-patch+json",
    });
    assert.equal(merge.status, 200, merge.text);
    assert.equal(merge.body["downtime-limit"], 400);
  });
});

Deno.test("unknown routes, unknown migrations and unknown blockers are 404 problems", async () => {
  await withAgent(async ({ request }) => {
    const route = await request("GET", "/nowhere");
    assertProblem(route, 404, "No route for GET /nowhere");
    assert.equal(route.body.class, "CommandNotFound");
    const m = await request("GET", "/migrations/out-none");
    assertProblem(m, 404, "Migration 'out-none' not found");
    assert.equal(m.body.class, "DeviceNotFound");
    assertProblem(
      await request("DELETE", "/blockers/blocker-99"),
      404,
      "Blocker 'blocker-99' not found",
    );
  });
});

Deno.test("a destination refuses migrate with the seed's text; migrate-incoming needs defer", async () => {
  await withAgent(async ({ request }) => {
    assertProblem(
      await request("POST", "/migrations", { uri: "tcp:127.0.0.1:1" }),
      409,
      "Guest is waiting for an incoming migration",
    );
    assertProblem(
      await request("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" }),
      409,
      "For use with '-incoming defer'",
    );
  }, { incoming: "tcp:127.0.0.1:0" });
  await withAgent(async ({ request }) => {
    assertProblem(
      await request("POST", "/migrations/incoming", { uri: "foo:bar" }),
      400,
      "unknown migration protocol: foo:bar (one of tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH, defer)",
    );
    const first = await request("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" });
    assert.equal(first.status, 202, first.text);
    assertProblem(
      await request("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" }),
      409,
      "The incoming migration has already been started",
    );
  }, { incoming: "defer" });
  await withAgent(async ({ request }) => {
    assertProblem(
      await request("POST", "/migrations/incoming", { uri: "tcp:127.0.0.1:0" }),
      409,
      "For use with '-incoming defer'",
    );
  });
});
