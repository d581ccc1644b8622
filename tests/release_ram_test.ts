/**
 * release-ram between two real agents: in postcopy the source hands sent pages back to the
 * operating system (its RSS falls; on huge pages too, which the 4 KiB releases split), the
 * destination's guest arrives whole, and a paused
 * postcopy migration with release-ram cannot be resumed (the seed's refusal).
 */
import assert from "node:assert/strict";
import { hugePagesUnavailable } from "../adapters/memory/huge_pages.ts";
import { type AgentProcess, type Json, startAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent, startLocalAgents } from "./helpers/local_agent.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { waitFor } from "../harness/wait.ts";

async function hugeBytes(a: AgentProcess): Promise<number> {
  return (await a.api("GET", "/machine")).body["x-ram-backing"]["huge-page-bytes"];
}

async function rssMiB(pid: number): Promise<number> {
  const status = await Deno.readTextFile(`/proc/${pid}/status`);
  return Number(/VmRSS:\s+(\d+)/.exec(status)![1]) / 1024;
}

for (const hp of ["on", "off"]) {
  Deno.test(`release-ram, huge pages ${hp}: the source's sent pages go back to the OS; the guest arrives whole`, async () => {
    await withAgents(async (track) => {
      const pages = ["--huge-pages", hp];
      // The source is a process: its RSS is what release-ram lowers.
      const [dst, src] = await Promise.all([
        startLocalAgent(["--ram", "64M", "--incoming", "tcp:127.0.0.1:0", ...pages]).then(track),
        startAgent(["--ram", "64M", "--fill", "random", "--workload", "idle", ...pages]).then(
          track,
        ),
      ]);
      const hugeBefore = await hugeBytes(src);
      if (hp === "on" && hugePagesUnavailable() === null) {
        assert.ok(hugeBefore > 60 * 2 ** 20, `source RAM on huge pages: ${hugeBefore}`);
      } else assert.equal(hugeBefore, 0);
      const before = (await src.api("GET", "/machine/digest")).body.blocks;
      assert.equal(
        (await src.api("PATCH", "/capabilities", { "postcopy-ram": true, "release-ram": true }))
          .status,
        200,
      );
      await src.api("PATCH", "/parameters", { "max-bandwidth": 32 << 20 });
      const rss0 = await rssMiB(src.pid);
      await src.api("POST", "/migrations", { uri: dst.incomingUri });
      // Part of the guest goes in precopy, the rest in postcopy.
      await waitFor("8 MiB sent in precopy", async () => {
        const info = (await src.api<Json>("GET", "/migrations/current")).body;
        assert.match(info.status, /^(setup|active)$/, JSON.stringify(info));
        return info.ram?.transferred >= 8 << 20;
      });
      assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
      const info = await src.waitStatus(/completed|failed/);
      assert.equal(info.status, "completed", JSON.stringify(info));
      assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
      const rss1 = await rssMiB(src.pid);
      console.log(`source RSS ${rss0.toFixed(0)} → ${rss1.toFixed(0)} MiB`);
      assert.ok(rss0 - rss1 > 40, `released ${rss0 - rss1} MiB of a 64 MiB guest`);
      if (hugeBefore > 0) {
        // GET /machine reads smaps at most once a second: wait for a reading after the release.
        await waitFor(
          "huge pages given back",
          async () => await hugeBytes(src) < hugeBefore - 40 * 2 ** 20,
        );
      }
      assert.deepEqual((await dst.api("GET", "/machine/digest")).body.blocks, before);
    });
  });
}

Deno.test("release-ram: a paused postcopy migration cannot be resumed", async () => {
  await withAgents(async (track) => {
    // As postcopy_e2e's narrow pair: a slowed postcopy lasts a second or two; the cut lands in it.
    const [dst, src] = await startLocalAgents(
      track,
      ["--ram", "32M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "32M", "--fill", "random", "--workload", "increment,start=1M,end=3M", "-S"],
    );
    const proxy = await CuttingProxy.start({
      hostname: "127.0.0.1",
      port: Number(dst.incomingUri!.split(":").pop()),
    });
    try {
      await src.api("PATCH", "/capabilities", { "postcopy-ram": true, "release-ram": true });
      await src.api("PATCH", "/parameters", {
        "max-bandwidth": 4 << 20,
        "downtime-limit": 20,
        "max-postcopy-bandwidth": 1 << 20,
      });
      assert.equal((await src.api("POST", "/machine/cont")).status, 202); // runs from here on
      await src.api("POST", "/migrations", { uri: proxy.uri });
      await src.waitStatus(/active/);
      await src.api("POST", "/migrations/current/postcopy");
      await src.waitStatus(/^postcopy-active$/);
      assert.equal(
        (await dst.waitStatus(/^(postcopy-active|completed)$/)).status,
        "postcopy-active",
      );
      proxy.pause(); // frozen, then cut: nothing more arrives, postcopy cannot end first
      proxy.cut();
      await src.waitStatus(/postcopy-paused/);
      const r = await src.api("POST", "/migrations", { uri: "tcp:127.0.0.1:9", resume: true });
      assert.equal(r.status, 400);
      assert.equal(
        r.body.detail,
        "Postcopy recovery cannot work when release-ram capability is set",
      );
      // Nor can it be cancelled: the guest runs on the destination and the source gave its
      // sent pages back (issue 18: cancel past the point of no return is refused).
      const cancel = await src.api("POST", "/migrations/current/cancel");
      assert.equal(cancel.status, 409, JSON.stringify(cancel.body));
      assert.equal((await src.api("GET", "/migrations/current")).body.status, "postcopy-paused");
    } finally {
      await proxy.close();
    }
  });
});
