/**
 * XBZRLE and compression between real agents (one source, two destinations): digests
 * equal, the increment check passes, and the counters are measured and consistent.
 */
import assert from "node:assert/strict";
import { withAgent } from "./contract_fixture.ts";
import { withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { assertSameRam } from "./helpers/same_ram.ts";

// One source for both: a compressible guest (pattern fill) held paused (-S) is idle for the
// compression step; after `cont` its vCPU runs the increment loop, rewriting every page each
// pass, for the xbzrle step to a second destination. Both destinations start at once.
Deno.test("codecs between real agents", async (t) => {
  await withAgents(async (track) => {
    const [dst, dst2, src] = await startLocalAgents(
      track,
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--fill", "pattern", "--workload", "increment", "-S"],
    );

    await t.step("compression: compressible pages go deflated; counters consistent", async () => {
      assert.equal((await src.api("GET", "/machine")).body.runstate, "paused"); // -S: the vCPU idle
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 0,
        "compress-threads": 2,
        "compress-level": 1,
      });
      await dst.api("PATCH", "/parameters", { "decompress-threads": 2 });
      assert.equal((await src.api("PATCH", "/capabilities", { compress: true })).status, 200);
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      const info = await src.waitStatus(/completed|failed/);
      assert.equal(info.status, "completed", JSON.stringify(info));
      const c = info.compression;
      assert.ok(c.pages > 0, JSON.stringify(c));
      assert.ok(c["compressed-size"] < c.pages * 4096, "compressed-size < pages × 4096");
      assert.ok(Math.abs(c["compression-rate"] - (c.pages * 4096) / c["compressed-size"]) < 1e-6);
      assert.ok(
        info.ram.transferred < 8 << 20,
        `transferred ${info.ram.transferred} < guest size`,
      );
      assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
      await assertSameRam(src, dst, false);
    });

    await t.step("xbzrle: resent pages go as small deltas; cache resized live", async () => {
      assert.equal((await src.api("POST", "/machine/cont")).status, 202); // runs from here on
      // Slow enough for several passes over a guest that rewrites every page each pass; the
      // cache holds half the guest, then all of it.
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 32 << 20,
        "downtime-limit": 100,
        "xbzrle-cache-size": 4 << 20,
      });
      const caps = await src.api("PATCH", "/capabilities", { compress: false, xbzrle: true });
      assert.equal(caps.status, 200);
      await src.api("POST", "/migrations", { uri: dst2.incomingUri });
      const active = await src.waitStatus(/active|completed/);
      if (active.status === "active") {
        assert.equal(active["xbzrle-cache"]["cache-size"], 4 << 20);
        const r = await src.api("PATCH", "/parameters", { "xbzrle-cache-size": 8 << 20 });
        assert.equal(r.status, 200);
      }
      const info = await src.waitStatus(/completed|failed/);
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal(info.compression, undefined, JSON.stringify(info.compression));
      const x = info["xbzrle-cache"];
      assert.ok(x, "xbzrle-cache is reported");
      assert.ok(x.pages > 0 && x["cache-miss"] > 0, JSON.stringify(x));
      assert.ok(x.bytes / x.pages < 4096 / 5, `bytes per xbzrle page ${x.bytes / x.pages}`);
      assert.ok(x["cache-miss-rate"] >= 0 && x["cache-miss-rate"] <= 1);
      assert.equal(x["cache-size"], active.status === "active" ? 8 << 20 : 4 << 20);
      assert.equal((await dst2.waitStatus(/completed|failed/)).status, "completed");
      await dst2.api("POST", "/machine/stop");
      const a = (await src.api("GET", "/machine/digest")).body;
      const b = (await dst2.api("GET", "/machine/digest")).body;
      assert.deepEqual(a.blocks, b.blocks);
      assert.equal(b["x-increment-check"].ok, true);
    });
  });
});

Deno.test("compression is refused with postcopy, with QEMU's text", async () => {
  // An API check only: an in-process agent behind the real app (no migration, no process).
  await withAgent(async ({ request }) => {
    const r = await request("PATCH", "/capabilities", { compress: true, "postcopy-ram": true });
    assert.equal(r.status, 400);
    assert.equal(r.body.detail, "Postcopy is not currently compatible with compression");
    assert.deepEqual((await request("GET", "/capabilities")).body.compress, false);
  });
});
