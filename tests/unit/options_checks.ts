/**
 * Issue 3, item 2: the seed's option checks through the real app — defaults, every range
 * with the seed's texts, the relational and power-of-two checks, null TLS names, atomic
 * PATCH, and the capability rules. A property test compares random patches against the
 * seed's ranges written out here independently of domain/options.ts.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { withAgent } from "../contract_fixture.ts";

const SEED_DEFAULTS = {
  "compress-level": 1,
  "compress-threads": 8,
  "compress-wait-thread": true,
  "decompress-threads": 2,
  "cpu-throttle-initial": 20,
  "cpu-throttle-increment": 10,
  "tls-creds": "",
  "tls-hostname": "",
  "max-bandwidth": 33554432,
  "downtime-limit": 300,
  "x-checkpoint-delay": 20000,
  "block-incremental": false,
  "x-multifd-channels": 2,
  "x-multifd-page-count": 16,
  "xbzrle-cache-size": 67108864,
  "max-postcopy-bandwidth": 0,
  "max-cpu-throttle": 99,
};

/** The seed's migrate_params_check ranges (lines 980-1072), with its texts said cleanly. */
const SEED_RANGES: Record<string, { lo: number; hi: number; text: string }> = {
  "compress-level": {
    lo: 0,
    hi: 9,
    text: "Parameter 'compress_level' expects a value between 0 and 9",
  },
  "compress-threads": {
    lo: 1,
    hi: 255,
    text: "Parameter 'compress_threads' expects a value between 1 and 255",
  },
  "decompress-threads": {
    lo: 1,
    hi: 255,
    text: "Parameter 'decompress_threads' expects a value between 1 and 255",
  },
  "cpu-throttle-initial": {
    lo: 1,
    hi: 99,
    text: "Parameter 'cpu_throttle_initial' expects a value between 1 and 99",
  },
  "cpu-throttle-increment": {
    lo: 1,
    hi: 99,
    text: "Parameter 'cpu_throttle_increment' expects a value between 1 and 99",
  },
  "downtime-limit": {
    lo: 0,
    hi: 2_000_000,
    text: "Parameter 'downtime_limit' expects an integer in the range of 0 to 2000000 milliseconds",
  },
  "x-multifd-channels": {
    lo: 1,
    hi: 255,
    text: "Parameter 'multifd_channels' expects a value between 1 and 255",
  },
  "x-multifd-page-count": {
    lo: 1,
    hi: 10000,
    text: "Parameter 'multifd_page_count' expects a value between 1 and 10000",
  },
};
const XBZRLE_TEXT =
  "Parameter 'xbzrle_cache_size' expects a power of two no less than the target page size (4096)";
const MAX_THROTTLE_TEXT =
  "Parameter 'max_cpu_throttle' expects a value between cpu_throttle_initial and 99";

Deno.test("GET /parameters and /capabilities: the seed's defaults, all 17 and all 16", async () => {
  await withAgent(async ({ request }) => {
    const p = await request("GET", "/parameters");
    assert.equal(p.status, 200);
    assert.deepEqual(p.body, SEED_DEFAULTS);
    const c = await request("GET", "/capabilities");
    assert.equal(Object.keys(c.body).length, 16);
    assert.ok(Object.values(c.body).every((v) => v === false));
  });
});

Deno.test("every range check answers 400 with the seed's text and changes nothing", async () => {
  await withAgent(async ({ request }) => {
    for (const [name, r] of Object.entries(SEED_RANGES)) {
      for (const bad of [r.lo - 1, r.hi + 1]) {
        if (bad < 0 && r.lo === 0) continue; // negative: a type error (the QAPI type is unsigned)
        const res = await request("PATCH", "/parameters", { [name]: bad, "x-checkpoint-delay": 1 });
        assert.equal(res.status, 400, `${name}=${bad}`);
        assert.equal(res.headers.get("content-type"), "application/problem+json");
        assert.equal(res.body.detail, r.text, `${name}=${bad}`);
        assert.equal(res.body.class, "GenericError");
      }
      for (const good of [r.lo, r.hi]) {
        const res = await request("PATCH", "/parameters", { [name]: good });
        assert.equal(res.status, 200, `${name}=${good}: ${res.text}`);
        assert.equal(res.body[name], good);
      }
    }
    const after = await request("GET", "/parameters");
    assert.equal(after.body["downtime-limit"], 2_000_000, "the last accepted value stays");
    assert.equal(
      after.body["x-checkpoint-delay"],
      20000,
      "no rejected PATCH applied its other member",
    );
  });
});

Deno.test("xbzrle-cache-size: a power of two no less than a page; max-cpu-throttle >= initial", async () => {
  await withAgent(async ({ request }) => {
    for (const bad of [0, 2048, 4095, 4097, 3 << 20]) {
      const res = await request("PATCH", "/parameters", { "xbzrle-cache-size": bad });
      assert.equal(res.status, 400, String(bad));
      assert.equal(res.body.detail, XBZRLE_TEXT);
    }
    assert.equal(
      (await request("PATCH", "/parameters", { "xbzrle-cache-size": 4096 })).status,
      200,
    );
    assert.equal(
      (await request("PATCH", "/parameters", { "cpu-throttle-initial": 50 })).status,
      200,
    );
    const low = await request("PATCH", "/parameters", { "max-cpu-throttle": 49 });
    assert.equal(low.status, 400);
    assert.equal(low.body.detail, MAX_THROTTLE_TEXT);
    // The check runs on the merged set: raising initial above the current max fails too.
    assert.equal((await request("PATCH", "/parameters", { "max-cpu-throttle": 60 })).status, 200);
    const raise = await request("PATCH", "/parameters", { "cpu-throttle-initial": 70 });
    assert.equal(raise.status, 400);
    assert.equal(raise.body.detail, MAX_THROTTLE_TEXT);
    assert.equal(
      (await request("PATCH", "/parameters", {
        "cpu-throttle-initial": 70,
        "max-cpu-throttle": 80,
      })).status,
      200,
    );
  });
});

Deno.test("tls-creds / tls-hostname: null means empty (seed line 1233); other members keep", async () => {
  await withAgent(async ({ request }) => {
    const set = await request("PATCH", "/parameters", {
      "tls-creds": "tls0",
      "tls-hostname": "dst",
    });
    assert.equal(set.body["tls-creds"], "tls0");
    const cleared = await request("PATCH", "/parameters", { "tls-creds": null });
    assert.equal(cleared.status, 200);
    assert.equal(cleared.body["tls-creds"], "");
    assert.equal(cleared.body["tls-hostname"], "dst");
    const wrong = await request("PATCH", "/parameters", { "tls-hostname": 5 });
    assert.equal(wrong.status, 400);
    assert.equal(wrong.body.detail, "Invalid parameter type for 'tls-hostname', expected: string");
  });
});

Deno.test("capabilities: the seed's incompatible pair, unsupported ones, block", async () => {
  await withAgent(async ({ request }) => {
    const pair = await request("PATCH", "/capabilities", {
      "postcopy-ram": true,
      "compress": true,
    });
    assert.equal(pair.status, 400);
    assert.equal(pair.body.detail, "Postcopy is not currently compatible with compression");
    // As the seed: block migration completes in precopy, then postcopy moves RAM only.
    const block = await request("PATCH", "/capabilities", { block: true, "postcopy-ram": true });
    assert.equal(block.status, 200, JSON.stringify(block.body));
    assert.equal((await request("PATCH", "/capabilities", { "postcopy-ram": false })).status, 200);
    const blockOnly = await request("PATCH", "/capabilities", { block: true });
    assert.equal(blockOnly.status, 200, "block migration is supported");
    assert.equal(blockOnly.body.block, true);
    assert.equal((await request("PATCH", "/capabilities", { block: false })).status, 200);
    const colo = await request("PATCH", "/capabilities", { "x-colo": true, "x-multifd": true });
    assert.equal(colo.status, 400);
    assert.equal(colo.body.detail, "COLO is not compatible with multifd");
    const ok = await request("PATCH", "/capabilities", { events: true, "zero-blocks": true });
    assert.equal(ok.status, 200);
    assert.equal(ok.body.events, true);
    assert.equal(ok.body["zero-blocks"], true);
    assert.equal(ok.body.xbzrle, false);
    const unknown = await request("PATCH", "/capabilities", { events: false, turbo: true });
    assert.equal(unknown.status, 400);
    assert.equal(unknown.body.detail, "Parameter 'turbo' is unexpected");
    assert.equal(
      (await request("GET", "/capabilities")).body.events,
      true,
      "a rejected PATCH changes nothing",
    );
  });
});

Deno.test("property: a random parameter patch is accepted exactly when every merged value is in the seed's range", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const int = (lo: number, hi: number) => fc.integer({ min: lo, max: hi });
  const patchArb = fc.record({
    "compress-level": int(0, 12),
    "compress-threads": int(0, 260),
    "decompress-threads": int(0, 260),
    "cpu-throttle-initial": int(0, 101),
    "cpu-throttle-increment": int(0, 101),
    "downtime-limit": int(0, 2_000_010),
    "x-multifd-channels": int(0, 260),
    "x-multifd-page-count": int(0, 10_010),
    "xbzrle-cache-size": fc.oneof(
      fc.integer({ min: 0, max: 1 << 22 }),
      int(10, 30).map((e) => 2 ** e),
    ),
    "max-cpu-throttle": int(0, 101),
  }, { requiredKeys: [] });
  await withAgent(async ({ request }) => {
    await fc.assert(
      fc.asyncProperty(patchArb, async (patch) => {
        const before = (await request("GET", "/parameters")).body;
        const merged = { ...before, ...patch };
        const failing: string[] = [];
        for (const [name, r] of Object.entries(SEED_RANGES)) {
          if (merged[name] < r.lo || merged[name] > r.hi) failing.push(r.text);
        }
        const x = merged["xbzrle-cache-size"];
        if (x < 4096 || (x & (x - 1)) !== 0) failing.push(XBZRLE_TEXT);
        const m = merged["max-cpu-throttle"];
        if (m < merged["cpu-throttle-initial"] || m > 99 || m < 1) failing.push(MAX_THROTTLE_TEXT);
        const res = await request("PATCH", "/parameters", patch);
        const after = (await request("GET", "/parameters")).body;
        if (failing.length === 0) {
          assert.equal(res.status, 200, `${JSON.stringify(patch)} -> ${res.text}`);
          assert.deepEqual(after, merged);
        } else {
          assert.equal(res.status, 400, JSON.stringify(patch));
          assert.ok(failing.includes(res.body.detail), `${res.body.detail} not in ${failing}`);
          if (failing.length === 1) assert.equal(res.body.detail, failing[0]);
          assert.deepEqual(after, before, "a rejected PATCH changes nothing");
        }
      }),
      { seed, numRuns: 300 },
    );
  });
});
