/**
 * Issue 19, item 7: exact numbers. The size parameters take every value the seed's QMP
 * takes (0 … 2^64 − 1, a negative −n as 2^64 − n), read from the JSON text without loss
 * beyond 2^53 and written back digit for digit; anything else is QMP's type error, and
 * changes nothing. A migration runs with such values.
 */
import assert from "node:assert/strict";
import { parseGlobals } from "../../domain/globals.ts";
import { type InProcess, type Json, withAgent } from "../contract_fixture.ts";

const U64_MAX = "18446744073709551615";

/** The raw text of `name` in a JSON object text (the number as written, not as parsed). */
function rawMember(text: string, name: string): string {
  const m = new RegExp(`"${name}":\\s*(-?[0-9.eE+-]+)`).exec(text);
  assert.ok(m, `${name} in ${text}`);
  return m[1];
}

async function patchRaw(h: InProcess, body: string) {
  return await h.request("PATCH", "/parameters", body);
}

Deno.test("sizes: every uint64 is taken and printed back exactly, in PATCH and GET", async () => {
  await withAgent(async (h) => {
    const cases: [string, string, string][] = [
      ["max-bandwidth", U64_MAX, U64_MAX],
      ["max-bandwidth", "9007199254740993", "9007199254740993"], // 2^53 + 1
      ["max-bandwidth", "-1", U64_MAX],
      ["max-postcopy-bandwidth", "-5", "18446744073709551611"],
      ["max-postcopy-bandwidth", "-9223372036854775808", "9223372036854775808"],
      ["max-postcopy-bandwidth", "12345678901234567890", "12345678901234567890"],
      ["xbzrle-cache-size", "9223372036854775808", "9223372036854775808"], // 2^63
      ["xbzrle-cache-size", "-9223372036854775808", "9223372036854775808"], // wraps to 2^63
      ["xbzrle-cache-size", "4096", "4096"],
      ["max-bandwidth", "0", "0"],
    ];
    for (const [name, sent, printed] of cases) {
      const r = await patchRaw(h, `{"${name}": ${sent}}`);
      assert.equal(r.status, 200, `${name}=${sent}: ${r.text}`);
      assert.equal(rawMember(r.text, name), printed, `PATCH ${name}=${sent}`);
      const get = await h.request("GET", "/parameters");
      assert.equal(rawMember(get.text, name), printed, `GET after ${name}=${sent}`);
      assert.equal(get.headers.get("etag"), r.headers.get("etag"));
    }
  });
});

Deno.test("sizes: beyond 64 bits, fractions and non-powers are QMP's errors; nothing changes", async () => {
  await withAgent(async (h) => {
    await patchRaw(h, `{"max-bandwidth": ${U64_MAX}, "xbzrle-cache-size": 8192}`);
    const before = await h.request("GET", "/parameters");
    const refused: [string, string][] = [
      [
        `{"max-bandwidth": 18446744073709551616}`,
        "Invalid parameter type for 'max-bandwidth', expected: uint64",
      ],
      [
        `{"max-postcopy-bandwidth": -9223372036854775809}`,
        "Invalid parameter type for 'max-postcopy-bandwidth', expected: uint64",
      ],
      [`{"max-bandwidth": 1.5}`, "Invalid parameter type for 'max-bandwidth', expected: uint64"],
      [`{"max-bandwidth": "1"}`, "Invalid parameter type for 'max-bandwidth', expected: uint64"],
      [`{"max-bandwidth": 1e300}`, "Invalid parameter type for 'max-bandwidth', expected: uint64"],
      [
        `{"xbzrle-cache-size": 9007199254740994}`,
        "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size (4096)",
      ],
      [
        `{"xbzrle-cache-size": -1}`,
        "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size (4096)",
      ],
      [
        `{"max-bandwidth": 1, "downtime-limit": 18446744073709551615}`,
        "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds",
      ],
    ];
    for (const [body, detail] of refused) {
      const r = await patchRaw(h, body);
      assert.equal(r.status, 400, `${body}: ${r.text}`);
      assert.equal(r.headers.get("content-type"), "application/problem+json");
      assert.equal(r.body.detail, detail, body);
      const after = await h.request("GET", "/parameters");
      assert.equal(after.text, before.text, `${body} changed nothing`);
    }
  });
});

Deno.test("sizes: If-Match with the exact ETag; --global takes a uint64 size exactly", async () => {
  const globals = parseGlobals([
    `migration.x-max-bandwidth=${U64_MAX}`,
    "migration.max-postcopy-bandwidth=9007199254740993",
  ]);
  await withAgent(async (h) => {
    const get = await h.request("GET", "/parameters");
    assert.equal(rawMember(get.text, "max-bandwidth"), U64_MAX);
    assert.equal(rawMember(get.text, "max-postcopy-bandwidth"), "9007199254740993");
    const etag = get.headers.get("etag")!;
    // One more unit, beyond what a double can tell apart: a new tag.
    const r = await h.request(
      "PATCH",
      "/parameters",
      `{"max-postcopy-bandwidth": 9007199254740992}`,
      {
        "if-match": etag,
      },
    );
    assert.equal(r.status, 200, r.text);
    assert.notEqual(r.headers.get("etag"), etag);
    const stale = await h.request("PATCH", "/parameters", `{"max-bandwidth": 1}`, {
      "if-match": etag,
    });
    assert.equal(stale.status, 412);
  }, { parameters: globals.parameters });
});

Deno.test("sizes: a migration runs with max-bandwidth 2^64 - 1 (unlimited in practice)", async () => {
  await withAgent(async (dst) => {
    await withAgent(async (src) => {
      const set = await patchRaw(src, `{"max-bandwidth": ${U64_MAX}}`);
      assert.equal(set.status, 200, set.text);
      const r = await src.request("POST", "/migrations", { uri: dst.agent.incomingUri });
      assert.equal(r.status, 202, r.text);
      let info: Json;
      const end = Date.now() + 30_000;
      do {
        await new Promise((res) => setTimeout(res, 20));
        info = (await src.request("GET", "/migrations/current")).body;
      } while (!/completed|failed/.test(info.status) && Date.now() < end);
      assert.equal(info.status, "completed", JSON.stringify(info));
      // A live change to the largest size reaches the data path without harm too.
      assert.equal((await patchRaw(src, `{"max-bandwidth": -1}`)).status, 200);
    });
  }, { incoming: "tcp:127.0.0.1:0" });
});
