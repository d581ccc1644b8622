/**
 * The convergence verdict and x-policy with real agents: a non-converging migration is
 * called so, and each policy action (cancel, postcopy, auto-converge) is carried out,
 * announced as MIGRATION_POLICY and written in the migration's history.
 */
import assert from "node:assert/strict";
import { type Json, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { recordEvents } from "./helpers/sse.ts";

/**
 * 20000 pages/s into an 8 MiB hot set against a 32 MiB/s link and a 20 ms downtime limit:
 * each quarter-second pass leaves about 7 MiB dirty, precopy alone never finishes (as in
 * auto_converge_test.ts).
 */
const HOT = ["--workload", "random,rate=20000,hot=0.5"];
const HOT_LINK = { "max-bandwidth": 32 << 20, "downtime-limit": 20 };

// One source for all three steps: the cancelled migration leaves the source running and the
// destination waiting for the next stream, which the second step's migration then is; the
// source that completed it runs again after `cont` and goes to a second destination.
Deno.test("policy on a guest precopy alone cannot migrate", async (t) => {
  await withAgents(async (track) => {
    const [dst, dst2, src] = await startLocalAgents(
      track,
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", ...HOT],
    );
    await t.step("not converging is called so; a progress timeout cancels", async () => {
      const ev = await recordEvents(src.base);
      try {
        await src.api("PATCH", "/parameters", HOT_LINK);
        const refused = await src.api("POST", "/migrations", {
          uri: dst.incomingUri,
          "x-policy": { "progress-timeout": 1, actions: ["postcopy"] },
        });
        assert.equal(refused.status, 400, "postcopy action without postcopy-ram is refused");
        assert.match(refused.body.detail, /postcopy-ram/);
        const r = await src.api<Json>("POST", "/migrations", {
          uri: dst.incomingUri,
          "x-policy": { "progress-timeout": 2, actions: ["cancel"] },
        });
        assert.equal(r.status, 202);
        // Quarter-second passes: the first verdicts may come before the dirty rate has been
        // measured (over a second); the verdict that counts comes before the cancel.
        const verdict = await ev.waitFor(
          (e) =>
            e.event === "MIGRATION_CONVERGENCE" &&
            /not-converging|stalled/.test((e.data as Json).verdict),
          20_000,
        );
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
    await t.step("escalation to auto-converge makes it converge", async () => {
      // The destination waits again: its failed attempt shows until the next stream.
      await dst.waitStatus(/^(setup|failed)$/, 30_000);
      await src.api("PATCH", "/parameters", {
        ...HOT_LINK,
        "cpu-throttle-initial": 50,
        "cpu-throttle-increment": 49,
      });
      const r = await src.api<Json>("POST", "/migrations", {
        uri: dst.incomingUri,
        "x-policy": { "progress-timeout": 1, actions: ["auto-converge"] },
      });
      assert.equal(r.status, 202);
      const info = await src.waitStatus(/completed|failed|cancelled/, 60_000);
      assert.equal(info.status, "completed");
      const one = (await src.api<Json>("GET", `/migrations/${r.body["x-id"]}`)).body;
      assert.ok(one["x-history"].some((h: Json) => /auto-converge/.test(h.note ?? "")));
    });
    await t.step("escalation to postcopy completes what precopy cannot", async () => {
      assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
      assert.equal((await src.api("POST", "/machine/cont")).status, 202); // runs again
      // The hot set against a 16 MiB/s link: as postcopy_e2e's, precopy alone never ends.
      await src.api("PATCH", "/parameters", { "max-bandwidth": 16 << 20, "downtime-limit": 20 });
      await src.api("PATCH", "/capabilities", { "postcopy-ram": true });
      // 64 s per GiB: the completion timeout fires after a second for this 16 MiB guest.
      const r = await src.api<Json>("POST", "/migrations", {
        uri: dst2.incomingUri,
        "x-policy": { "completion-timeout-per-gib": 64, actions: ["postcopy", "cancel"] },
      });
      assert.equal(r.status, 202);
      const info = await src.waitStatus(/completed|failed|cancelled/, 60_000);
      assert.equal(info.status, "completed", JSON.stringify(info));
      const one = (await src.api<Json>("GET", `/migrations/${r.body["x-id"]}`)).body;
      assert.ok(
        one["x-history"].some((h: Json) =>
          /completion-timeout fired .*postcopy/.test(h.note ?? "")
        ),
        JSON.stringify(one["x-history"]),
      );
      assert.ok(one["x-history"].some((h: Json) => h.status === "postcopy-active"));
      assert.equal((await dst2.waitStatus(/^(completed|failed)$/)).status, "completed");
    });
  });
});
