/**
 * Issue 19, item 6: recovery without races. The client sequence QMP scripts use: pause on
 * the source, wait for the source's postcopy-paused event, recover on the destination,
 * resume on the source; 20 times in a row on one postcopy migration. Every channel runs
 * over a proxy that passes the end of a stream on 100 ms late (a long path), so each
 * recover arrives while the destination is still noticing that its source paused: it is
 * accepted (it waits for the destination to pause), answers once it listens (so the resume
 * connects at the first try), and the source goes paused → recover → active once. Then a
 * recover that cannot listen is a 400 at once and does not block the next one.
 */
import assert from "node:assert/strict";
import { type Json, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { recordEvents, type SseRecorder } from "./helpers/sse.ts";
import { completesWhole } from "./helpers/same_ram.ts";

const ROUNDS = 20;
/** How late the proxies pass on the end of a stream. */
const END_DELAY_MS = 100;

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const p = (l.addr as Deno.NetAddr).port;
  l.close();
  return p;
}

/** The MIGRATION statuses `rec` has seen for `side`, from event index `from` on. */
function statuses(rec: SseRecorder, side: string, from = 0): string[] {
  return rec.events.slice(from).filter((e) =>
    e.event === "MIGRATION" && (e.data as Json).side === side
  ).map((e) => (e.data as Json).status);
}

/** Waits for the `n`th MIGRATION event of `side` with `status` (1-based). */
async function nth(rec: SseRecorder, side: string, status: string, n: number) {
  const end = Date.now() + 30_000;
  while (statuses(rec, side).filter((s) => s === status).length < n) {
    if (Date.now() > end) {
      throw new Error(`no ${status} #${n} on ${side}: ${statuses(rec, side).join(", ")}`);
    }
    await rec.waitFor((e) => e.event === "MIGRATION", 1000).catch(() => {});
    await new Promise((r) => setTimeout(r, 5));
  }
}

Deno.test(`postcopy recovery: pause, wait for the source's event, recover, resume — ${ROUNDS} times`, async () => {
  await withAgents(async (track) => {
    const [dst, src] = await startLocalAgents(
      track,
      ["--ram", "64M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "64M", "--fill", "random", "--workload", "random,rate=200"],
    );
    // Slow enough that postcopy outlasts every round (background pages at 64 KiB/s would take
    // ~17 minutes for this guest); the guest's faults still get pages at once.
    await src.api("PATCH", "/parameters", {
      "max-bandwidth": 1 << 20,
      "max-postcopy-bandwidth": 64 << 10,
    });
    assert.equal((await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
    const se = await recordEvents(src.base);
    const de = await recordEvents(dst.base, "0");
    const proxies: CuttingProxy[] = [];
    const slowPathTo = async (uri: string) => {
      const port = Number(uri.split(":").pop());
      const proxy = await CuttingProxy.start({
        hostname: "127.0.0.1",
        port,
        endDelayMs: END_DELAY_MS,
      });
      proxies.push(proxy);
      return proxy.uri;
    };
    try {
      const first = await slowPathTo(dst.incomingUri!);
      assert.equal((await src.api("POST", "/migrations", { uri: first })).status, 202);
      await nth(se, "source", "active", 1);
      assert.equal((await src.api("POST", "/migrations/current/postcopy")).status, 202);
      await nth(se, "source", "postcopy-active", 1);
      // The guest runs on the destination from here (before, a cut link fails it there).
      await nth(de, "destination", "postcopy-active", 1);
      for (let round = 1; round <= ROUNDS; round++) {
        const srcMark = se.events.length;
        const dstMark = de.events.length;
        const pause = await src.api("POST", "/migrations/current/pause");
        assert.equal(pause.status, 202, `round ${round}: ${JSON.stringify(pause.body)}`);
        await nth(se, "source", "postcopy-paused", round);
        const uri = `tcp:127.0.0.1:${freePort()}`;
        const rec = await dst.api("POST", "/migrations/incoming/recover", { uri });
        assert.equal(
          rec.status,
          202,
          `round ${round}: recover ${JSON.stringify(rec.body)}; destination saw ${
            statuses(de, "destination", dstMark)
          }`,
        );
        assert.equal(rec.body.status, "postcopy-paused");
        const resume = await src.api("POST", "/migrations", {
          uri: await slowPathTo(uri),
          resume: true,
        });
        assert.equal(resume.status, 202, `round ${round}: resume ${JSON.stringify(resume.body)}`);
        await nth(se, "source", "postcopy-active", round + 1);
        await nth(de, "destination", "postcopy-active", round + 1);
        assert.deepEqual(
          statuses(se, "source", srcMark),
          ["postcopy-paused", "postcopy-recover", "postcopy-active"],
          `round ${round}: the source went paused → recover → active once`,
        );
        assert.deepEqual(
          statuses(de, "destination", dstMark),
          ["postcopy-paused", "setup", "postcopy-recover", "postcopy-active"],
          `round ${round}: the destination, with the seed's setup announcement`,
        );
      }
      // A recover that cannot listen is an error at once and blocks no later recover.
      assert.equal((await src.api("POST", "/migrations/current/pause")).status, 202);
      await nth(se, "source", "postcopy-paused", ROUNDS + 1);
      const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const busy = `tcp:127.0.0.1:${(taken.addr as Deno.NetAddr).port}`;
      const refused = await dst.api("POST", "/migrations/incoming/recover", { uri: busy });
      taken.close();
      assert.equal(refused.status, 400, JSON.stringify(refused.body));
      assert.match(refused.body.detail, /^migrate-recover: /);
      const uri = `tcp:127.0.0.1:${freePort()}`;
      assert.equal((await dst.api("POST", "/migrations/incoming/recover", { uri })).status, 202);
      await src.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 0 });
      assert.equal((await src.api("POST", "/migrations", { uri, resume: true })).status, 202);
      await completesWhole(src, dst);
    } finally {
      await se.close();
      await de.close();
      await Promise.all(proxies.map((p) => p.close()));
    }
  });
});
