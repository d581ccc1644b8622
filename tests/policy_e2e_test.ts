/**
 * The convergence verdict and x-policy with real agents: a non-converging migration is
 * called so, and each policy action (cancel, postcopy, auto-converge) is carried out,
 * announced as MIGRATION_POLICY and written in the migration's history.
 */
import assert from "node:assert/strict";
import { type AgentProcess, type Json, startAgent } from "./helpers/agent_process.ts";
import { recordEvents } from "./helpers/sse.ts";

async function withPair(
  srcArgs: string[],
  fn: (src: AgentProcess, dst: AgentProcess) => Promise<void>,
): Promise<void> {
  const agents: AgentProcess[] = [];
  try {
    const dst = await startAgent(["--ram", "64M", "--incoming", "tcp:127.0.0.1:0"]);
    agents.push(dst);
    const src = await startAgent(["--ram", "64M", "--fill", "random", ...srcArgs]);
    agents.push(src);
    await fn(src, dst);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

/** 20000 pages/s into a 32 MiB hot set against a 24 MiB/s link: precopy alone never finishes. */
const HOT = ["--workload", "random,rate=20000,hot=0.5"];

Deno.test("policy: not converging is called so; a progress timeout cancels", async () => {
  await withPair(HOT, async (src) => {
    const ev = await recordEvents(src.base);
    try {
      await src.api("PATCH", "/parameters", { "max-bandwidth": 24 << 20 });
      const r = await src.api("POST", "/migrations", {
        uri: "tcp:127.0.0.1:1",
        "x-policy": { "progress-timeout": 2, actions: ["postcopy"] },
      });
      assert.equal(r.status, 400, "postcopy action without postcopy-ram is refused");
      assert.match(r.body.detail, /postcopy-ram/);
    } finally {
      await ev.close();
    }
  });
  await withPair(HOT, async (src, dst) => {
    const ev = await recordEvents(src.base);
    try {
      await src.api("PATCH", "/parameters", { "max-bandwidth": 24 << 20 });
      const r = await src.api<Json>("POST", "/migrations", {
        uri: dst.incomingUri,
        "x-policy": { "progress-timeout": 4, actions: ["cancel"] },
      });
      assert.equal(r.status, 202);
      const verdict = await ev.waitFor(
        (e) => e.event === "MIGRATION_CONVERGENCE" && (e.data as Json).verdict !== "estimating",
        20_000,
      );
      assert.match((verdict.data as Json).verdict, /not-converging|stalled/);
      assert.ok((verdict.data as Json).suggestion);
      const info = await src.waitStatus(/cancelled|completed|failed/, 30_000);
      assert.equal(info.status, "cancelled");
      const pol = await ev.waitFor((e) => e.event === "MIGRATION_POLICY");
      assert.equal((pol.data as Json).action, "cancel");
      const one = (await src.api<Json>("GET", `/migrations/${r.body["x-id"]}`)).body;
      assert.ok(
        one["x-history"].some((h: Json) =>
          /policy: progress-timeout fired .*cancel/.test(h.note ?? "")
        ),
      );
      assert.equal((await src.api("GET", "/machine")).body.runstate, "running");
    } finally {
      await ev.close();
    }
  });
});

Deno.test("policy: escalation to auto-converge makes it converge", async () => {
  await withPair(HOT, async (src, dst) => {
    await src.api("PATCH", "/parameters", {
      "max-bandwidth": 24 << 20,
      "cpu-throttle-initial": 50,
      "cpu-throttle-increment": 25,
    });
    const r = await src.api<Json>("POST", "/migrations", {
      uri: dst.incomingUri,
      "x-policy": { "progress-timeout": 3, actions: ["auto-converge"] },
    });
    assert.equal(r.status, 202);
    const info = await src.waitStatus(/completed|failed|cancelled/, 60_000);
    assert.equal(info.status, "completed");
    const one = (await src.api<Json>("GET", `/migrations/${r.body["x-id"]}`)).body;
    assert.ok(one["x-history"].some((h: Json) => /auto-converge/.test(h.note ?? "")));
  });
});

Deno.test("policy: escalation to postcopy completes a guest precopy cannot", async () => {
  await withPair(["--workload", "increment"], async (src, dst) => {
    await src.api("PATCH", "/parameters", { "max-bandwidth": 16 << 20 });
    await src.api("PATCH", "/capabilities", { "postcopy-ram": true });
    const r = await src.api<Json>("POST", "/migrations", {
      uri: dst.incomingUri,
      "x-policy": { "completion-timeout-per-gib": 32, actions: ["postcopy", "cancel"] },
    });
    assert.equal(r.status, 202);
    const info = await src.waitStatus(/completed|failed|cancelled/, 60_000);
    assert.equal(info.status, "completed", JSON.stringify(info));
    const one = (await src.api<Json>("GET", `/migrations/${r.body["x-id"]}`)).body;
    assert.ok(
      one["x-history"].some((h: Json) => /completion-timeout fired .*postcopy/.test(h.note ?? "")),
    );
    assert.ok(one["x-history"].some((h: Json) => h.status === "postcopy-active"));
  });
});
