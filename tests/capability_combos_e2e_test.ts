/**
 * Issue 19, item 4: no Ferry-only refusals. What the seed's migrate_caps_check allows,
 * Ferry allows and does as QEMU does, each proved by a migration between real agents with
 * equal digests: multifd with postcopy (precopy pages on the page channels, which are
 * flushed and ended before postcopy runs on the main channel and the return path), multifd
 * with xbzrle (multifd pages bypass the cache), multifd with compress (compressed pages go
 * on the main channel), and rdma-pin-all and dirty-bitmaps, which change nothing here.
 * What Ferry still cannot do is refused as a Ferry limitation.
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { recordEvents } from "./helpers/sse.ts";
import { withAgent } from "./contract_fixture.ts";

/** Polls the source's query-migrate until `pred` holds (the status must stay running). */
async function waitInfo(src: TestAgent, what: string, pred: (i: Json) => boolean) {
  const end = Date.now() + 60_000;
  for (;;) {
    const info = (await src.api("GET", "/migrations/current")).body;
    if (pred(info)) return info;
    if (/completed|failed|cancelled/.test(info.status) || Date.now() > end) {
      throw new Error(`never saw ${what}: ${JSON.stringify(info)}`);
    }
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Stops the destination's guest and compares both guests' RAM as it arrived. */
async function assertSameGuest(src: TestAgent, dst: TestAgent) {
  assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
  await dst.api("POST", "/machine/stop");
  const a = (await src.api("GET", "/machine/digest")).body;
  const b = (await dst.api("GET", "/machine/digest")).body;
  assert.deepEqual(a.blocks, b.blocks);
  assert.equal(b["x-increment-check"].ok, true, "the guest's own check holds");
}

/** Every capability a step may turn on, off: each step names only what it needs. */
const NONE = { "postcopy-ram": false, xbzrle: false, compress: false };

/**
 * Runs the source's guest again (a migrated source waits in postmigrate; `cont` lets it go
 * on, as QEMU's does) and sets multifd with 2 channels plus `caps` and `params` for the
 * next migration.
 */
async function configure(src: TestAgent, caps: Json, params: Json) {
  assert.equal((await src.api("POST", "/machine/cont")).status, 202);
  const p = await src.api("PATCH", "/parameters", { "x-multifd-channels": 2, ...params });
  assert.equal(p.status, 200, JSON.stringify(p.body));
  const c = await src.api("PATCH", "/capabilities", { ...NONE, "x-multifd": true, ...caps });
  assert.equal(c.status, 200, JSON.stringify(c.body));
}

// One source for all four migrations, each to a destination of its own: a source that
// completed runs again after `cont` and migrates on. Its vCPU increments every page.
Deno.test("capability combinations with multifd, one source", async (t) => {
  await withAgents(async (track) => {
    const incoming = ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"];
    const [src, ...dsts] = await startLocalAgents(
      track,
      ["--ram", "16M", "--fill", "random", "--workload", "increment", "-S"],
      incoming,
      incoming,
      incoming,
      incoming,
    );

    for (const when of ["mid-pass", "after a whole pass"] as const) {
      await t.step(
        `multifd + postcopy (${when}): page channels flushed, postcopy on the main channel`,
        async () => {
          const dst = dsts.shift()!;
          // 16 MiB/s for a 16 MiB guest that dirties every page: precopy alone never converges.
          await configure(src, { "postcopy-ram": true }, { "max-bandwidth": 16 << 20 });
          const de = await recordEvents(dst.base, "0");
          try {
            assert.equal(
              (await src.api("POST", "/migrations", { uri: dst.incomingUri })).status,
              202,
            );
            await waitInfo(
              src,
              when,
              when === "mid-pass"
                ? (i) => i.status === "active" && i.ram["multifd-bytes"] > 2 << 20
                : (i) => i.status === "active" && i.ram["dirty-sync-count"] >= 2,
            );
            assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
            const info = await src.waitStatus(/completed|failed/);
            assert.equal(info.status, "completed", JSON.stringify(info));
            assert.ok(
              info.ram["multifd-bytes"] > 2 << 20,
              "precopy pages went on the page channels",
            );
            assert.ok(
              info.ram.transferred - info.ram["multifd-bytes"] > 1 << 20,
              "postcopy pages went on the main channel",
            );
            await assertSameGuest(src, dst);
            const seen = de.events.filter((e) => e.event === "MIGRATION").map((e) =>
              (e.data as Json).status
            );
            assert.deepEqual(seen, ["setup", "active", "postcopy-active", "completed"]);
          } finally {
            await de.close();
          }
        },
      );
    }

    await t.step(
      "multifd + xbzrle (+ rdma-pin-all, dirty-bitmaps): multifd pages bypass the cache",
      async () => {
        const dst = dsts.shift()!;
        await configure(
          src,
          { xbzrle: true, "rdma-pin-all": true, "dirty-bitmaps": true },
          { "max-bandwidth": 0, "xbzrle-cache-size": 1 << 20 },
        );
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        const info = await src.waitStatus(/completed|failed/);
        assert.equal(info.status, "completed", JSON.stringify(info));
        assert.ok(info.ram["dirty-sync-count"] >= 2, "pages were sent again");
        assert.ok(info.ram["multifd-bytes"] > 8 << 20);
        assert.equal(info["xbzrle-cache"]["cache-size"], 1 << 20);
        assert.equal(info["xbzrle-cache"].pages, 0, "no page went through the cache");
        await assertSameGuest(src, dst);
      },
    );

    await t.step(
      "multifd + compress: as in the seed, compressed pages go on the main channel",
      async () => {
        const dst = dsts.shift()!;
        await configure(src, { compress: true, "rdma-pin-all": false, "dirty-bitmaps": false }, {
          "max-bandwidth": 0,
          "compress-threads": 2,
        });
        assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
        const info = await src.waitStatus(/completed|failed/);
        assert.equal(info.status, "completed", JSON.stringify(info));
        assert.ok(info.compression.pages > 0, JSON.stringify(info.compression));
        assert.ok(info.ram["multifd-bytes"] < 64 << 10, "the page channels carried no pages");
        await assertSameGuest(src, dst);
      },
    );
  });
});

Deno.test("what Ferry cannot do is refused as a Ferry limitation; rdma: still fails clearly", async () => {
  await withAgent(async ({ request }) => {
    const colo = await request("PATCH", "/capabilities", { "x-colo": true, "postcopy-ram": true });
    assert.equal(colo.status, 400);
    assert.equal(colo.body.detail, "COLO is not compatible with postcopy");
    const on = await request("PATCH", "/capabilities", {
      "rdma-pin-all": true,
      "dirty-bitmaps": true,
      "x-multifd": true,
      "postcopy-ram": true,
      xbzrle: true,
    });
    assert.equal(on.status, 200, on.text);
    const rdma = await request("POST", "/migrations", { uri: "rdma:127.0.0.1:4444" });
    assert.equal(rdma.status, 400);
    assert.equal(rdma.body.detail, "RDMA migration is not supported by this build");
    assert.equal((await request("GET", "/migrations/current")).body.status, "failed");
  });
});
