/**
 * Issue 23, end to end: the guest's disk. Three agents over real sockets: one source whose
 * vCPU writes its drive while it migrates, a destination for `blk` (its image existing and
 * full of other bytes, with zero-blocks on; the disk ends in precopy, then postcopy moves the
 * RAM, paused by migrate-pause and recovered on a new port), one for `inc` (its image the
 * source's base; late-block-activate: its drives activate at `cont`; its guest writes its disk
 * there, and the dirty bitmap that came with the disk counts those writes). The images'
 * SHA-256 are equal once the source's guest stopped; the disk counters are measured;
 * a cancelled block migration leaves the source's guest and image as they were, and so does
 * a failed one (the link cut mid-disk), whose destination never runs a guest on its partly
 * written image and takes a full `blk` afterwards; the seed's refusals for conflicting options.
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { expectDestinationFailed, incomingPort, waitingAttempt } from "./helpers/fault_kit.ts";
import { freePort, listening } from "./helpers/ports.ts";
import { waitFor } from "../harness/wait.ts";

const MiB = 1 << 20;
const DISK = 32 * MiB;

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function migrate(src: TestAgent, body: Json): Promise<Json> {
  const r = await src.api("POST", "/migrations", body);
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const done = await src.waitStatus(/^(completed|failed|cancelled)$/, 60_000);
  assert.equal(done.status, "completed", JSON.stringify(done));
  return done;
}

/** GET /drives' entry for disk0 on image `file` of the test's directory. */
let drive0: (file: string, active: boolean, bitmaps?: Json[]) => Json;

async function caps(a: TestAgent): Promise<Json> {
  return (await a.api("GET", "/capabilities")).body;
}

Deno.test("disk: blk then postcopy under disk writes, inc with late activation, a cancel, a failure, refusals", async (t) => {
  const dir = await Deno.makeTempDir();
  drive0 = (file, active, bitmaps = []) => ({
    id: "disk0",
    file: `${dir}/${file}`,
    size: DISK,
    active,
    "dirty-bitmaps": bitmaps,
  });
  try {
    // The source's image: random, its first 4 MiB zero (zero-blocks sends them as markers).
    const src = new Uint8Array(DISK);
    for (let o = 4 * MiB; o < DISK; o += 65536) crypto.getRandomValues(src.subarray(o, o + 65536));
    await Deno.writeFile(`${dir}/src.img`, src);
    await Deno.writeFile(`${dir}/base.img`, src); // inc's destination starts from the base
    // blk's destination image exists, the right size, full of other bytes (0x5a, which the
    // source's random blocks are not, page for page).
    await Deno.writeFile(`${dir}/blk.img`, new Uint8Array(DISK).fill(0x5a));
    await withAgents(async (track) => {
      const drive = (f: string) => ["--drive", `id=disk0,file=${dir}/${f},size=32M`];
      const [s, dBlk, dInc] = await startLocalAgents(
        track,
        [
          "--ram",
          "16M",
          "--fill",
          "random",
          "--workload",
          "increment,rate=2000,disk=50",
          ...drive("src.img"),
        ],
        ["--ram", "16M", ...drive("blk.img"), "--incoming", "tcp:127.0.0.1:0"],
        [
          "--ram",
          "16M",
          // Its guest (the source's, once arrived) writes its disk at this rate.
          "--workload",
          "increment,rate=2000,disk=50",
          ...drive("base.img"),
          "--incoming",
          "tcp:127.0.0.1:0",
        ],
      );

      await t.step("the seed's refusals for conflicting block options", async () => {
        const on = await s.api("PATCH", "/capabilities", { block: true });
        assert.equal(on.status, 200);
        const both = await s.api("POST", "/migrations", { uri: dBlk.incomingUri, blk: true });
        assert.equal(both.status, 400);
        assert.equal(
          both.body.detail,
          "Command options are incompatible with current migration capabilities",
        );
        assert.equal((await s.api("PATCH", "/capabilities", { block: false })).status, 200);
        await s.api("PATCH", "/parameters", { "block-incremental": true });
        const inc = await s.api("POST", "/migrations", { uri: dBlk.incomingUri, inc: true });
        assert.equal(inc.status, 400);
        assert.equal(inc.body.detail, both.body.detail);
        await s.api("PATCH", "/parameters", { "block-incremental": false });
        assert.deepEqual((await s.api("GET", "/migrations")).body, [], "no migration recorded");
      });

      await t.step("a cancelled block migration leaves the source's guest and image", async () => {
        await s.api("PATCH", "/parameters", { "max-bandwidth": 4 * MiB });
        const r = await s.api("POST", "/migrations", {
          uri: `file:${dir}/cancel.stream`,
          blk: true,
        });
        assert.equal(r.status, 202);
        const running = await waitFor("the block migration to send disk blocks", async () => {
          const info = (await s.api("GET", "/migrations/current")).body;
          return info.status === "active" && info.disk?.transferred > 0 && info;
        });
        assert.equal(running.disk.total, DISK);
        assert.equal((await s.api("POST", "/migrations/current/cancel")).status, 202);
        assert.equal((await s.waitStatus(/^(cancelled|completed|failed)$/)).status, "cancelled");
        const m = (await s.api("GET", "/machine")).body;
        assert.equal(m.runstate, "running");
        assert.deepEqual(m.drives, [drive0("src.img", true)]);
        assert.equal((await Deno.stat(`${dir}/src.img`)).size, DISK);
        assert.equal((await caps(s)).block, false, "blk is undone after the migration");
      });

      await t.step(
        "a failed block migration: source intact, destination's image unused",
        async () => {
          // Cut once 24 MiB went: RAM (16 MiB) and disk (32 MiB) interleave, so mid-disk.
          const proxy = await CuttingProxy.start({
            hostname: "127.0.0.1",
            port: incomingPort(dBlk),
            cutAfter: { up: 24 * MiB },
          });
          try {
            const attempt = await waitingAttempt(dBlk);
            const dstBefore = await sha256(`${dir}/blk.img`);
            // A stopped guest writes nothing: the source's image must stay byte for byte.
            assert.equal((await s.api("POST", "/machine/stop")).status, 202);
            const srcBefore = await sha256(`${dir}/src.img`);
            await s.api("PATCH", "/parameters", { "max-bandwidth": 48 * MiB });
            const r = await s.api("POST", "/migrations", { uri: proxy.uri, blk: true });
            assert.equal(r.status, 202, JSON.stringify(r.body));
            const info = await s.waitStatus(/^(completed|failed|cancelled)$/, 60_000);
            assert.equal(info.status, "failed", JSON.stringify(info));
            assert.equal(proxy.cuts, 1);
            const m = (await s.api("GET", "/machine")).body;
            assert.equal(m.runstate, "paused", "the guest is as it was before the migration");
            assert.deepEqual(m.drives, [drive0("src.img", true)]);
            assert.equal(await sha256(`${dir}/src.img`), srcBefore, "the source's image intact");
            assert.equal((await caps(s)).block, false, "blk is undone after a failure too");
            // The destination wrote the blocks that came (as QEMU's block migration does) and
            // never ran a guest on them: its runstate stays inmigrate, cont is refused.
            await expectDestinationFailed(dBlk, attempt);
            const partial = await sha256(`${dir}/blk.img`);
            assert.notEqual(partial, dstBefore, "blocks arrived before the cut");
            assert.notEqual(partial, srcBefore, "the cut landed mid-disk");
            assert.equal((await dBlk.api("POST", "/machine/cont")).status, 409);
            assert.deepEqual((await dBlk.api("GET", "/drives")).body, [drive0("blk.img", false)]);
            assert.equal((await s.api("POST", "/machine/cont")).status, 202);
          } finally {
            await proxy.close();
          }
        },
      );

      await t.step(
        "blk, then postcopy, paused and recovered: the disk ends in precopy under disk writes, images equal",
        async () => {
          // 16 MiB/s: the disk's pass lasts about 2 s, in which the guest's 50 writes a second
          // land on blocks already sent (they go again, below) even if a busy host delays it.
          await s.api("PATCH", "/parameters", { "max-bandwidth": 16 * MiB });
          await s.api("PATCH", "/capabilities", {
            "zero-blocks": true,
            "postcopy-ram": true,
            "dirty-bitmaps": true,
          });
          // A dirty bitmap made now counts the guest's writes; it travels with the disk.
          const bm = await s.api("POST", "/drives/disk0/bitmaps", { name: "since-blk" });
          assert.equal(bm.status, 201, JSON.stringify(bm.body));
          const r = await s.api("POST", "/migrations", { uri: dBlk.incomingUri, blk: true });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          await waitFor("the block migration to send disk blocks", async () => {
            const info = (await s.api("GET", "/migrations/current")).body;
            return info.status === "active" && info.disk?.transferred > 0;
          });
          // As the seed: postcopy starts once the disk's rest fits; it moves RAM only. Its
          // background pages slowed, so that migrate-pause finds it running.
          await s.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 1 * MiB });
          assert.equal((await s.api("POST", "/migrations/current/postcopy")).status, 202);
          assert.equal(
            (await s.waitStatus(/^postcopy-active$|^failed$/)).status,
            "postcopy-active",
          );
          // The guest runs on the destination: the package has arrived.
          const there = await dBlk.waitStatus(/^(postcopy-active|completed|failed)$/);
          assert.equal(there.status, "postcopy-active", JSON.stringify(there));
          // The disk went whole before postcopy began: a pause and a recovery move RAM only.
          assert.equal((await s.api("POST", "/migrations/current/pause")).status, 202);
          const paused = await s.waitStatus(/postcopy-paused|failed/);
          assert.equal(paused.status, "postcopy-paused", JSON.stringify(paused));
          assert.equal((await dBlk.waitStatus(/postcopy-paused|failed/)).status, "postcopy-paused");
          const port = freePort();
          const uri = `tcp:127.0.0.1:${port}`;
          const rec = await dBlk.api("POST", "/migrations/incoming/recover", { uri });
          assert.equal(rec.status, 202, JSON.stringify(rec.body));
          await waitFor(`the destination listening on ${uri} to recover`, () => listening(port));
          await s.api("PATCH", "/parameters", { "max-postcopy-bandwidth": 0 });
          const resumed = await s.api("POST", "/migrations", { uri, resume: true });
          assert.equal(resumed.status, 202, JSON.stringify(resumed.body));
          const done = await s.waitStatus(/^(completed|failed|cancelled)$/, 60_000);
          assert.equal(done.status, "completed", JSON.stringify(done));
          const one = (await s.api("GET", `/migrations/${r.body["x-id"]}`)).body;
          const path = one["x-history"].map((h: Json) => h.status);
          for (const st of ["postcopy-active", "postcopy-paused", "postcopy-recover"]) {
            assert.ok(path.includes(st), path.join(" "));
          }
          await s.api("PATCH", "/capabilities", { "postcopy-ram": false });
          assert.equal(done.disk.total, DISK);
          assert.equal(done.disk.remaining, 0);
          // Blocks the guest wrote after they were sent went again.
          assert.ok(done.disk.transferred > DISK, JSON.stringify(done.disk));
          assert.equal((await caps(s)).block, false, "blk is undone after the migration");
          const metrics = await (await fetch(`${s.base}/metrics`)).text();
          assert.match(
            metrics,
            new RegExp(`ferry_migration_disk_bytes\\{kind="total"\\} ${DISK}\n`),
          );
          assert.match(
            metrics,
            new RegExp(
              `ferry_migration_disk_bytes\\{kind="transferred"\\} ${done.disk.transferred}\n`,
            ),
          );
          // The switchover inactivated the source's drives; the destination's guest arrived
          // running (no late-block-activate): its drives are active.
          const after = (await s.api("GET", "/machine")).body;
          assert.equal(after.runstate, "postmigrate");
          const [bitmap] = after.drives[0]["dirty-bitmaps"];
          assert.equal(bitmap.name, "since-blk");
          assert.ok(bitmap.count > 0 && bitmap.count % 65536 === 0, JSON.stringify(bitmap));
          assert.deepEqual(after.drives, [drive0("src.img", false, [bitmap])]);
          const rs = await dBlk.waitStatus(/^(completed|failed)$/);
          assert.equal(rs.status, "completed");
          assert.equal(await sha256(`${dir}/blk.img`), await sha256(`${dir}/src.img`));
          assert.deepEqual(
            (await dBlk.api("GET", "/machine/digest")).body.blocks,
            (await s.api("GET", "/machine/digest")).body.blocks,
          );
          // The bitmap arrived as the source's guest left it (this guest writes no disk).
          assert.deepEqual((await dBlk.api("GET", "/drives")).body, [
            drive0("blk.img", true, [bitmap]),
          ]);
        },
      );

      await t.step(
        "inc, late-block-activate: only written blocks move; drives active at cont; the bitmap counts on",
        async () => {
          assert.equal((await s.api("POST", "/machine/cont")).status, 202); // writes again
          assert.equal((await s.api("DELETE", "/drives/disk0/bitmaps/since-blk")).status, 204);
          assert.deepEqual((await s.api("GET", "/drives")).body, [drive0("src.img", true)]);
          // A bitmap made on the source, counting its guest's writes, travels with the disk.
          const add = await s.api("POST", "/drives/disk0/bitmaps", { name: "since-inc" });
          assert.equal(add.status, 201, JSON.stringify(add.body));
          await waitFor(
            "the source's guest to write its disk",
            async () => (await s.api("GET", "/drives")).body[0]["dirty-bitmaps"][0].count > 0,
          );
          // A paused guest arrives paused: with late-block-activate its drives wait for cont.
          assert.equal((await s.api("POST", "/machine/stop")).status, 202);
          const [bitmap] = (await s.api("GET", "/drives")).body[0]["dirty-bitmaps"];
          assert.equal(
            (await dInc.api("PATCH", "/capabilities", { "late-block-activate": true })).status,
            200,
          );
          await s.api("PATCH", "/capabilities", { "zero-blocks": false, "dirty-bitmaps": true });
          const done = await migrate(s, { uri: dInc.incomingUri, inc: true });
          assert.equal(done.disk.total, DISK);
          assert.ok(
            done.disk.transferred > 0 && done.disk.transferred < DISK,
            JSON.stringify(done.disk),
          );
          assert.equal(done.disk.transferred % 65536, 0);
          const p = (await s.api("GET", "/parameters")).body;
          assert.equal(p["block-incremental"], false, "inc is undone after the migration");
          assert.equal((await dInc.waitStatus(/^(completed|failed)$/)).status, "completed");
          assert.equal(await sha256(`${dir}/base.img`), await sha256(`${dir}/src.img`));
          const arrived = (await dInc.api("GET", "/machine")).body;
          assert.equal(arrived.runstate, "paused");
          assert.deepEqual(arrived.drives, [drive0("base.img", false, [bitmap])], "not yet: late");
          assert.equal((await dInc.api("POST", "/machine/cont")).status, 202);
          const running = (await dInc.api("GET", "/machine")).body;
          assert.equal(running.runstate, "running");
          assert.equal(running.drives[0].active, true, "cont activated them");
          // The destination's guest writes its disk: the bitmap that came counts on there.
          const grown = await waitFor(
            "the arrived bitmap to count the destination's writes",
            async () => {
              const [d] = (await dInc.api("GET", "/drives")).body;
              return d["dirty-bitmaps"][0].count > bitmap.count && d;
            },
          );
          assert.deepEqual(grown["dirty-bitmaps"].map((b: Json) => b.name), ["since-inc"]);
          assert.equal(
            (await s.api("GET", "/drives")).body[0]["dirty-bitmaps"][0].count,
            bitmap.count,
          );
        },
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
