/**
 * Issue 6, two hosts for real: source and destination in two network namespaces joined by
 * a veth pair shaped to 1 Gbit/s with 2 ms of delay. A guest that does not converge in
 * precopy switches to postcopy; mid-postcopy the link goes down (`ip link set down`): the
 * stalled stream is paused on both sides (migrate-pause, as for any hung network), the
 * link comes back up, the destination listens again (migrate-recover), the source resumes,
 * and the migration completes with equal memory. Skipped, saying why, where namespaces
 * cannot be made (not root, no iproute2, or a kernel that refuses).
 */
import assert from "node:assert/strict";
import { type Json } from "../harness/agent_process.ts";
import { NetnsPair, netnsUnavailable, type NsAgent, startNsAgent } from "./helpers/netns.ts";
import { listening } from "./helpers/ports.ts";
import { waitFor } from "../harness/wait.ts";

const unavailable = netnsUnavailable();
if (unavailable) console.log(`netns test skipped: ${unavailable}`);

Deno.test({
  name: "two hosts: netns + veth + tc, link down mid-postcopy, recover after it comes back",
  ignore: unavailable !== null,
  sanitizeResources: false,
  async fn() {
    const pair = NetnsPair.create("1gbit", "2ms");
    console.log(`link ${pair.addrA} ↔ ${pair.addrB}: ${pair.shaping}`);
    const dir = await Deno.makeTempDir({ prefix: "ferry-netns-" });
    const agents: NsAgent[] = [];
    try {
      // As postcopy_e2e's narrow pair: a vCPU incrementing 1..3 MiB of 32 MiB, a 4 MiB/s
      // precopy that does not converge, then a postcopy slowed by max-postcopy-bandwidth.
      const started = await Promise.allSettled([
        startNsAgent(pair.b, `${dir}/dst.sock`, [
          "--ram",
          "32M",
          "--incoming",
          `tcp:${pair.addrB}:4444`,
        ]),
        startNsAgent(pair.a, `${dir}/src.sock`, [
          "--ram",
          "32M",
          "--fill",
          "random",
          "--workload",
          "increment,start=1M,end=3M",
          "-S",
        ]),
      ]);
      for (const s of started) if (s.status === "fulfilled") agents.push(s.value);
      for (const s of started) if (s.status === "rejected") throw s.reason;
      const [dst, src] = agents;
      assert.equal(dst.incomingUri, `tcp:${pair.addrB}:4444`);
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 4 << 20,
        "downtime-limit": 20,
        "max-postcopy-bandwidth": 1 << 20,
      });
      assert.equal((await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
      assert.equal((await src.api("POST", "/machine/cont")).status, 202); // runs from here on
      const r = await src.api("POST", "/migrations", { uri: `tcp:${pair.addrB}:4444` });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      await waitFor("1 MiB sent in precopy", async () => {
        const info = (await src.api("GET", "/migrations/current")).body;
        assert.match(info.status, /^(setup|active)$/, JSON.stringify(info));
        return info.ram?.transferred >= 1 << 20;
      });
      assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
      await src.waitStatus(/^postcopy-active$/, 20_000);
      await dst.waitStatus(/^postcopy-active$/, 20_000);

      pair.setLink(false);
      // Nothing tells either side the link is gone: the stream just stalls. The guest,
      // split between the hosts, must not be lost meanwhile: time must pass to show that.
      await new Promise((res) => setTimeout(res, 500));
      for (const a of [src, dst]) {
        const s = (await a.api("GET", "/migrations/current")).body.status;
        assert.match(s, /^postcopy-(active|paused)$/, `while the link is down: ${s}`);
      }
      for (const a of [src, dst]) {
        const s = (await a.api("GET", "/migrations/current")).body.status;
        if (s === "postcopy-active") {
          assert.equal((await a.api("POST", "/migrations/current/pause")).status, 202);
        }
        await a.waitStatus(/^postcopy-paused$/, 10_000);
      }

      pair.setLink(true);
      const rec = await dst.api("POST", "/migrations/incoming/recover", {
        uri: `tcp:${pair.addrB}:4445`,
      });
      assert.equal(rec.status, 202, JSON.stringify(rec.body));
      await waitFor("the destination listening on port 4445", () => listening(4445, dst.pid));
      // The rest goes at full speed (the resumed channel is held to max-bandwidth too).
      await src.api("PATCH", "/parameters", { "max-bandwidth": 0, "max-postcopy-bandwidth": 0 });
      const resumed = await src.api("POST", "/migrations", {
        uri: `tcp:${pair.addrB}:4445`,
        resume: true,
      });
      assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
      const info: Json = await src.waitStatus(/^(completed|failed)$/, 60_000);
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal((await dst.waitStatus(/^(completed|failed)$/, 30_000)).status, "completed");
      assert.equal((await dst.api("POST", "/machine/stop")).status, 202);
      const a = (await src.api("GET", "/machine/digest")).body;
      const b = (await dst.api("GET", "/machine/digest")).body;
      assert.deepEqual(a.blocks, b.blocks);
      assert.equal(b["x-increment-check"].ok, true, JSON.stringify(b["x-increment-check"]));
    } catch (e) {
      for (const a of agents) console.error(a.log().slice(-2000));
      throw e;
    } finally {
      await Promise.all(agents.map((a) => a.stop()));
      pair.destroy();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
