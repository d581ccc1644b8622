/**
 * Issue 16, item 5 through a real agent: 20 concurrent `GET /machine/digest` run one at a
 * time (the rest wait or get 429 with Retry-After) while the agent keeps answering; event
 * streams beyond `--max-sse-subscribers` get 503 until one closes.
 */
import assert from "node:assert/strict";
import { withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";

/** The value of an unlabelled metric in a Prometheus exposition. */
function metric(text: string, name: string): number {
  const line = text.split("\n").find((l) => l.startsWith(`${name} `));
  if (line === undefined) throw new Error(`no metric ${name}`);
  return Number(line.slice(name.length + 1));
}

// One agent for both checks: no digest opens an event stream and no stream asks for a digest.
Deno.test("a real agent's limits", async (t) => {
  await withAgents(async (track) => {
    // 256 MiB of random RAM: each digest is a real pass, long next to a request round trip.
    const agent = track(
      await startLocalAgent(["--ram", "256M", "--fill", "random", "--max-sse-subscribers", "2"]),
    );
    await t.step(
      "20 concurrent digests run one at a time; the agent answers meanwhile",
      async () => {
        let digestsDone = 0;
        const digests = Array.from({ length: 20 }, async () => {
          const r = await fetch(`${agent.base}/machine/digest?at=now`);
          const reply = {
            status: r.status,
            type: r.headers.get("content-type"),
            retryAfter: r.headers.get("retry-after"),
            body: await r.json(),
          };
          if (r.status === 200) digestsDone++;
          return reply;
        });
        // While they run, the agent answers: a probe and a query, each before the last digest.
        const health = await fetch(`${agent.base}/healthz`);
        assert.equal(health.status, 200);
        await health.body?.cancel();
        const during = await agent.api("GET", "/migrations/current");
        assert.equal(during.status, 200);
        const doneWhenAnswered = digestsDone;
        const replies = await Promise.all(digests);
        const ok = replies.filter((r) => r.status === 200);
        const refused = replies.filter((r) => r.status === 429);
        assert.equal(ok.length + refused.length, 20, JSON.stringify(replies.map((r) => r.status)));
        assert.ok(doneWhenAnswered < ok.length, "the agent answered only after every digest");
        assert.ok(ok.length >= 1);
        assert.ok(refused.length >= 1, "20 at once overflow one running and a short queue");
        for (const r of ok) assert.deepEqual(r.body.blocks, ok[0].body.blocks, "the same RAM");
        for (const r of refused) {
          assert.equal(r.type, "application/problem+json");
          assert.match(r.retryAfter ?? "", /^[1-9]\d*$/, "Retry-After in whole seconds");
          assert.match(r.body.detail, /one at a time/);
        }
        const metrics = await (await fetch(`${agent.base}/metrics`)).text();
        assert.equal(metric(metrics, "ferry_ram_pass_running_max"), 1, "never two at once");
        assert.equal(metric(metrics, "ferry_ram_pass_running"), 0);
        assert.equal(metric(metrics, "ferry_ram_pass_waiting"), 0);
      },
    );

    await t.step(
      "event streams beyond --max-sse-subscribers get 503 until one closes",
      async () => {
        const open = async () => {
          const r = await fetch(`${agent.base}/events`);
          if (r.status === 200) {
            const reader = r.body!.getReader();
            await reader.read(); // the opening comment: the stream is established
            return { status: 200, close: () => reader.cancel() };
          }
          const body = await r.json();
          return { status: r.status, body, type: r.headers.get("content-type") };
        };
        const first = await open();
        const second = await open();
        assert.equal(first.status, 200);
        assert.equal(second.status, 200);
        const third = await open();
        assert.equal(third.status, 503);
        assert.equal(third.type, "application/problem+json");
        assert.match(third.body.detail, /--max-sse-subscribers/);
        // The rest of the API is not affected.
        assert.equal((await agent.api("GET", "/migrations/current")).status, 200);
        await first.close!();
        const end = Date.now() + 30_000;
        let again = await open();
        while (again.status !== 200) {
          if (Date.now() > end) throw new Error("a closed stream's slot was never given back");
          await new Promise((r) => setTimeout(r, 50));
          again = await open();
        }
        assert.equal((await open()).status, 503, "still at most 2");
        await again.close!();
        await second.close!();
      },
    );
  });
});
