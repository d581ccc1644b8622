/**
 * Issue 2, end to end: two real agents over real sockets. A running, dirtying guest
 * migrates live; digests match; the destination continues the loop; SSE sequences are
 * exact; failures and cancel leave the source running.
 */
import assert from "node:assert/strict";
import {
  type Json,
  markAttempt,
  type TestAgent,
  waitNextEnd,
  withAgents,
} from "../harness/agent_process.ts";
import { startLocalAgent, startLocalAgents } from "./helpers/local_agent.ts";
import { REFUSING_PORT } from "./helpers/ports.ts";
import { recordEvents, type SseRecorder } from "./helpers/sse.ts";
import { waitFor } from "../harness/wait.ts";

/** The MIGRATION statuses `rec` saw for `side` (and for migration `id` only, if given). */
function statuses(rec: SseRecorder, side: string, id?: string): string[] {
  return rec.events.filter((e) =>
    e.event === "MIGRATION" && (e.data as Json).side === side &&
    (id === undefined || (e.data as Json).id === id)
  ).map((e) => (e.data as Json).status);
}

async function digests(a: TestAgent): Promise<Json> {
  return (await a.api<Json>("GET", "/machine/digest")).body;
}

/** The vCPU's pages-written counter. */
async function pagesWritten(a: TestAgent): Promise<number> {
  return (await a.api<Json>("GET", "/machine")).body.workload["pages-written"];
}

/** Waits until the guest of `a` has written more than `than` pages: its vCPU runs. */
function writesBeyond(a: TestAgent, than: number, who: string): Promise<number> {
  return waitFor(`${who}'s vCPU to write beyond page count ${than}`, async () => {
    const n = await pagesWritten(a);
    return n > than && n;
  });
}

// One source for everything: failures and a cancel leave its guest running, a completed
// migration leaves it in postmigrate, from where `cont` runs it again (as QEMU's) for the next.
// Its vCPU increments its RAM from the first step on. The destinations start with it, at once:
// one over tcp (a cancelled attempt, then the whole guest), one over a unix socket, and one
// whose pc.ram is half the source's; the exec destination starts once the file is written.
Deno.test("precopy: failures, a cancel, then tcp, a unix socket and exec from one source", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await withAgents(async (track) => {
      const sock = `${dir}/mig.sock`;
      const [src, dst, unixDst, smallDst] = await startLocalAgents(
        track,
        ["--ram", "16M", "--fill", "random", "--workload", "increment", "-S", "--allow-exec"],
        ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
        ["--ram", "16M", "--incoming", `unix:${sock}`],
        ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      );
      assert.equal((await src.api("POST", "/machine/cont")).status, 202); // runs from here on
      await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });

      await t.step("a migration to a closed port fails with error-desc", async () => {
        const port = REFUSING_PORT;
        assert.equal(
          (await src.api("POST", "/migrations", { uri: `tcp:127.0.0.1:${port}` })).status,
          202,
        );
        const info = await src.waitStatus(/failed|completed/);
        assert.equal(info.status, "failed");
        assert.match(String(info["error-desc"]), /refused|connect/i);
        assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "running");
        // A second migration is accepted afterwards (not "in progress").
        const again = await src.api<Json>("POST", "/migrations", {
          uri: `tcp:127.0.0.1:${port}`,
        });
        assert.equal(again.status, 202);
        await src.waitStatus(/failed/);
      });

      await t.step(
        "return path: a destination that fails to load turns the source failed",
        async () => {
          await src.api("PATCH", "/capabilities", { "return-path": true });
          await src.api("POST", "/migrations", { uri: smallDst.incomingUri });
          const info = await src.waitStatus(/completed|failed/);
          assert.equal(info.status, "failed");
          assert.equal((await src.api("GET", "/machine")).body.runstate, "running");
        },
      );

      await t.step("a destination with a different RAM layout rejects the stream", async () => {
        await smallDst.waitStatus(/^(setup|failed)$/, 30_000); // waiting for the next stream
        const ev = await recordEvents(smallDst.base);
        try {
          await src.api("POST", "/migrations", { uri: smallDst.incomingUri });
          await ev.waitFor((e) => (e.data as Json).status === "failed");
          const failed = (await smallDst.api<Json[]>("GET", "/migrations")).body.find((m) =>
            m.status === "failed"
          )!;
          assert.match(
            String(failed["error-desc"]),
            /Configuration mismatch: RAM block 'pc.ram' is 16777216 bytes on the source, 8388608 here/,
          );
          assert.equal((await smallDst.api<Json>("GET", "/machine")).body.runstate, "inmigrate");
          // With the return path on, the destination's failure fails the source too.
          assert.equal((await src.waitStatus(/completed|failed/)).status, "failed");
          assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "running");
          // query-migrate keeps saying failed; the destination still listens for the next attempt.
          assert.equal(
            (await smallDst.api<Json>("GET", "/migrations/current")).body.status,
            "failed",
          );
        } finally {
          await ev.close();
        }
        await src.api("PATCH", "/capabilities", { "return-path": false });
      });

      await t.step("cancel mid-flight: cancelling then cancelled, the source runs on", async () => {
        // 16 MiB at 4 MiB/s: about four seconds of flight, cancelled after the first MiB.
        const ev = await recordEvents(src.base);
        try {
          await src.api("PATCH", "/parameters", { "max-bandwidth": 4 * 2 ** 20 });
          await src.api("POST", "/migrations", { uri: dst.incomingUri });
          await waitFor("the source to send its first MiB", async () => {
            const info = (await src.api<Json>("GET", "/migrations/current")).body;
            assert.match(info.status, /^(setup|active)$/, JSON.stringify(info));
            return info.ram?.transferred >= 2 ** 20;
          });
          assert.equal((await src.api("POST", "/migrations/current/cancel")).status, 202);
          const info = await src.waitStatus(/cancelled|failed|completed/);
          assert.equal(info.status, "cancelled");
          await ev.waitFor((e) => (e.data as Json).status === "cancelled");
          assert.deepEqual(statuses(ev, "source"), ["setup", "active", "cancelling", "cancelled"]);
          const m1 = (await src.api<Json>("GET", "/machine")).body;
          assert.equal(m1.runstate, "running");
          await writesBeyond(src, m1.workload["pages-written"], "the source");
          // The destination saw the stream break: failed, guest not running.
          const d = await dst.waitStatus(/failed|setup/);
          assert.notEqual(d.status, "completed");
          assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "inmigrate");
        } finally {
          await ev.close();
        }
      });

      await t.step(
        "precopy over tcp: a dirtying guest arrives whole and keeps running",
        async () => {
          await dst.waitStatus(/^(setup|failed)$/, 30_000); // waiting for the next stream
          const dstEvents = await recordEvents(dst.base, "0");
          const srcEvents = await recordEvents(src.base);
          try {
            const p = await src.api("PATCH", "/parameters", {
              "max-bandwidth": 10 * 2 ** 30,
              "downtime-limit": 300,
            });
            assert.equal(p.status, 200);
            // The cancelled attempt's failure shows until this stream's first bytes are read.
            const mark = await markAttempt(dst);
            const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
            assert.equal(r.status, 202, JSON.stringify(r.body));
            assert.match(r.headers.get("location") ?? "", /^\/migrations\/out-/);
            const info = await src.waitStatus(/completed|failed|cancelled/);
            assert.equal(info.status, "completed", JSON.stringify(info));
            const current = await waitNextEnd(dst, mark);
            assert.equal(current.status, "completed", JSON.stringify(current));

            // Counters are measured, not invented.
            assert.equal(info.ram.total, 16 * 2 ** 20);
            assert.ok(
              info.ram.transferred >= 16 * 2 ** 20 * 0.9,
              `transferred ${info.ram.transferred}`,
            );
            assert.ok(info.ram["dirty-sync-count"] >= 2);
            assert.ok(info.ram.normal > 0 && info.ram.mbps > 0 && info.downtime >= 0);
            assert.ok(!("remaining" in info.ram), "no remaining once completed");

            const srcMachine = (await src.api<Json>("GET", "/machine")).body;
            assert.equal(srcMachine.runstate, "postmigrate");
            const dstMachine = (await dst.api<Json>("GET", "/machine")).body;
            assert.equal(dstMachine.runstate, "running");
            // The destination continues the source's loop: its counters start where the source
            // stopped.
            const before = srcMachine.workload["pages-written"];
            assert.ok(before > 0);
            await writesBeyond(dst, before, "the destination");

            assert.equal((await dst.api("POST", "/machine/stop")).status, 202);
            const a = await digests(src);
            const b = await digests(dst);
            assert.deepEqual(a.blocks, b.blocks.map((x: Json) => x));
            assert.equal(b["x-increment-check"].ok, true, JSON.stringify(b["x-increment-check"]));

            await srcEvents.waitFor((e) =>
              e.event === "MIGRATION" && (e.data as Json).status === "completed"
            );
            await dstEvents.waitFor((e) =>
              e.event === "MIGRATION" && (e.data as Json).status === "completed"
            );
            assert.deepEqual(statuses(srcEvents, "source"), ["setup", "active", "completed"]);
            // This attempt's own statuses (the cancelled one before it had its own id).
            assert.deepEqual(statuses(dstEvents, "destination", current["x-id"]), [
              "setup",
              "active",
              "completed",
            ]);
            assert.ok(srcEvents.events.some((e) => e.event === "MIGRATION_PASS"));
            assert.ok(srcEvents.events.some((e) => e.event === "progress"));
          } finally {
            await dstEvents.close();
            await srcEvents.close();
          }
        },
      );

      await t.step("precopy over a unix socket completes with equal digests", async () => {
        assert.equal((await src.api("POST", "/machine/cont")).status, 202);
        await src.api("PATCH", "/parameters", { "max-bandwidth": 0 });
        assert.equal((await src.api("POST", "/migrations", { uri: `unix:${sock}` })).status, 202);
        assert.equal((await src.waitStatus(/completed|failed/)).status, "completed");
        assert.equal((await unixDst.waitStatus(/completed|failed/)).status, "completed");
        await unixDst.api("POST", "/machine/stop");
        assert.deepEqual((await digests(src)).blocks, (await digests(unixDst)).blocks);
      });

      await t.step("exec: save to a file, then restore from it", async () => {
        const file = `${dir}/guest.bin`;
        assert.equal((await src.api("POST", "/machine/cont")).status, 202);
        assert.equal(
          (await src.api("POST", "/migrations", { uri: `exec:cat > ${file}` })).status,
          202,
        );
        assert.equal((await src.waitStatus(/completed|failed/)).status, "completed");
        const execDst = track(
          await startLocalAgent(["--ram", "16M", "--allow-exec", "--incoming", `exec:cat ${file}`]),
        );
        assert.equal((await execDst.waitStatus(/completed|failed/)).status, "completed");
        await execDst.api("POST", "/machine/stop");
        assert.deepEqual((await digests(src)).blocks, (await digests(execDst)).blocks);
        assert.equal((await digests(execDst))["x-increment-check"].ok, true);
      });
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
