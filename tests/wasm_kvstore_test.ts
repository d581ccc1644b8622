/**
 * Issue 22, items 3 and 4: the kvstore sample guest, built from its AssemblyScript source
 * (guests/build.ts), live-migrated between two real agents while a client keeps sending it
 * commands: to the source until the source stops taking them (409, its state has gone), then
 * to the destination. No command is lost, every answer comes, in order, numbered on across
 * the switchover; what was stored before is read back after; the stopped source's RAM equals
 * the destination's (started with -S, so it waits, paused, to be compared). At the --ram cap
 * the store answers "ERR out of memory" and serves on. Its memory starts small and grows as it
 * stores (issue 22, item 2): the client makes it store 6 MiB more during the precopy, and the
 * destination's memory ends the same size. Two agents, reused step after step.
 *
 * Issue 23, item 1: the store persists (PERSIST) to its drive, a WASI file of the preopened
 * `/drives`, so the guest writes its disk while it is migrated with `blk`: the images are
 * equal once it arrived, the destination's guest goes on appending at the position its open
 * file had on the source, and the log replays to the same store.
 */
import assert from "node:assert/strict";
import { type Json, startAgent, type Track, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import {
  expectedAnswer,
  fillValue,
  kvSum,
  logRecords,
  startKvClient,
} from "./helpers/kv_client.ts";
import { waitFor } from "../harness/wait.ts";
import { type OutputReader, readOutput, waitMachine, workDir } from "./helpers/wasm_guest.ts";
import { buildGuest } from "../guests/build.ts";

/** The kvstore's answer lines so far: the records of both sides, numbered 1, 2, ... n. */
const MiB = 1 << 20;

async function sha256(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The records of the kvstore's log in image `path`: the header's length, from byte 4096. */
async function imageLog(path: string): Promise<string[]> {
  const image = await Deno.readFile(path);
  assert.equal(new TextDecoder().decode(image.subarray(0, 8)), "FKVLOG01");
  const length = Number(new DataView(image.buffer).getBigUint64(8, true));
  const text = new TextDecoder().decode(image.subarray(4096, 4096 + length));
  assert.match(text, /\n$/, "whole records");
  return text.slice(0, -1).split("\n");
}

function answers(...readers: OutputReader[]): string[] {
  const records = readers.flatMap((r) => r.records).sort((a, b) => a.seq - b.seq);
  records.forEach((r: Json, i) => {
    assert.equal(r.seq, i + 1, "records numbered without gap or repeat across both sides");
    assert.equal(r.stream, "stdout", r.text);
  });
  const text = records.map((r: Json) => r.text).join("");
  return text === "" ? [] : text.replace(/\n$/, "").split("\n");
}

Deno.test("kvstore guest: migrated under a client's commands, none lost, every answer in order", async (t) => {
  const kvstore = (await buildGuest("kvstore")).path;
  const w = await workDir({});
  const start = (args: string[]) =>
    startLocalAgent(["--ram", "32M", "--guest", `wasm:${kvstore}`, ...args]);
  const image = (side: string) => `${w.dir}/${side}.img`;
  const drive = (side: string) => ["--drive", `id=disk0,file=${image(side)},size=16M`];
  try {
    await withAgents(async (track) => {
      const src = track(await start(drive("src")));
      // After the source: the prepared module is then in the cache (one binaryen pass).
      const dst = track(await start([...drive("dst"), "--incoming", "tcp:127.0.0.1:0", "-S"]));
      const srcOut = await readOutput(src);
      const dstOut = await readOutput(dst);
      const store = new Map<string, string>();
      const commands: string[] = [];
      const send = async (to: typeof src, command: string) => {
        const r = await fetch(`${to.base}/machine/input`, { method: "POST", body: `${command}\n` });
        assert.equal(r.status, 202, await r.text());
        commands.push(command);
      };
      const waitAnswers = (n: number, what: string) =>
        waitFor(what, () => answers(srcOut, dstOut).length >= n && answers(srcOut, dstOut));

      await t.step("before: FILL and SET answered; the store holds what was put", async () => {
        await send(src, "PERSIST disk0"); // a fresh log on the drive: every change goes there
        await send(src, "FILL 2000 4096");
        for (let i = 0; i < 50; i++) await send(src, `SET pre:${i} v${i}`);
        await send(src, "COUNT");
        const got = await waitAnswers(53, "53 answers on the source");
        assert.deepEqual(got, [
          "OK PERSIST records=0 bytes=0",
          "OK 2000",
          ...Array(50).fill("OK"),
          "COUNT 2050",
        ]);
        for (let i = 0; i < 2000; i++) store.set(`fill:${i}`, fillValue(i, 4096));
        for (let i = 0; i < 50; i++) store.set(`pre:${i}`, `v${i}`);
      });

      const before = commands.length;
      const model = new Map(store);
      let grow = false;
      const next = (i: number) => {
        if (grow) {
          grow = false;
          return "FILL 1500 4096 grow:";
        }
        return i % 2 === 0 ? `SET live:${i} ${i}` : `GET pre:${i % 50}`;
      };
      const used = async (a: typeof src) =>
        (await a.api<Json>("GET", "/machine")).body.blocks[0].used as number;
      const client = startKvClient(src, dst, next);
      try {
        await t.step(
          "migrated with its drive (blk) while the client writes: the source's input goes along",
          async () => {
            await waitFor("10 commands taken by the source", () => client.count("source") >= 10);
            const caps = { "pause-before-switchover": true, "return-path": true };
            assert.equal((await src.api("PATCH", "/capabilities", caps)).status, 200);
            // Slow at first, so that the guest writes its drive while the disk moves, and its
            // store grows (a FILL of 6 MiB) during the precopy.
            await src.api("PATCH", "/parameters", { "max-bandwidth": 8 * MiB });
            const startUsed = await used(src);
            const r = await src.api<Json>("POST", "/migrations", {
              uri: dst.incomingUri,
              blk: true,
            });
            assert.equal(r.status, 202, JSON.stringify(r.body));
            await waitFor("the block migration to send disk blocks", async () => {
              const info = (await src.api<Json>("GET", "/migrations/current")).body;
              return info.disk?.transferred > 0;
            });
            // Each SET the guest serves now appends to its log and rewrites its header block,
            // which went first: those blocks must go again.
            const served = srcOut.records.at(-1)?.seq ?? 0;
            const oks = () =>
              srcOut.records.filter((rec) => rec.seq > served)
                .reduce((n, rec) => n + (rec.text.match(/^OK$/gm)?.length ?? 0), 0);
            await waitFor(
              "5 more SETs served by the source's guest while its disk moves",
              () => oks() >= 5,
            );
            grow = true;
            await waitFor(
              "the source's memory grown by the FILL during the precopy",
              async () => (await used(src)) >= startUsed + (6 << 20),
            );
            const during = (await src.api<Json>("GET", "/migrations/current")).body;
            assert.equal(during.status, "active", "it grew during the precopy");
            await src.api("PATCH", "/parameters", { "max-bandwidth": 1024 * MiB });
            assert.equal((await src.waitStatus(/pre-switchover|failed/)).status, "pre-switchover");
            assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "finish-migrate");
            // The source is stopped and still takes input: unread, it travels in the device state.
            const taken = client.count("source");
            await waitFor(
              "5 commands taken by the stopped source",
              () => client.count("source") >= taken + 5,
            );
            const go = await src.api("POST", "/migrations/current/continue", {
              state: "pre-switchover",
            });
            assert.equal(go.status, 202, JSON.stringify(go.body));
            const info = await src.waitStatus(/completed|failed|cancelled/);
            assert.equal(info.status, "completed", JSON.stringify(info));
            assert.equal(info.disk.total, 16 * MiB);
            assert.ok(info.disk.transferred > 16 * MiB, "written blocks went again");
            await waitMachine(
              dst,
              (m) => m.runstate === "paused",
              "paused on the destination (-S)",
            );
            assert.equal(await sha256(image("dst")), await sha256(image("src")), "images equal");
            assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
            const digest = async (a: typeof src) =>
              (await a.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
            assert.deepEqual(await digest(dst), await digest(src), "the RAM arrived as it left");
            const grown = await used(src);
            assert.ok(grown >= startUsed + (6 << 20), `${startUsed} -> ${grown} bytes in use`);
            assert.equal(await used(dst), grown, "the destination's memory grew to the source's");
          },
        );

        await t.step(
          "the client goes on at the destination; every answer comes, in order",
          async () => {
            await waitFor(
              "10 commands taken by the paused destination",
              () => client.count("destination") >= 10,
            );
            const refused = client.refusals.filter((r) => r.to === "source");
            assert.ok(refused.length >= 1, "the source refused input once its state had gone");
            assert.match(
              refused[0].detail,
              /took the guest.s state.*runstate (finish-migrate|postmigrate)/,
            );
            assert.equal((await dst.api("POST", "/machine/cont")).status, 202);
            const atCont = client.count("destination");
            await waitFor(
              "20 more commands on the running destination",
              () => client.count("destination") >= atCont + 20,
            );
            await client.stop();
            const sentAfter = client.sent.map((s) => s.command);
            // Source first, then destination, never back: one switchover.
            const switched = client.sent.findIndex((s) => s.to === "destination");
            assert.ok(client.sent.slice(switched).every((s) => s.to === "destination"));
            commands.push(...sentAfter);
            const got = await waitAnswers(commands.length, "an answer to every command");
            const want = sentAfter.map((c) => expectedAnswer(c, model));
            assert.equal(got.length, before + want.length, "one answer per command");
            assert.deepEqual(got.slice(before), want);
            for (const [k, v] of model) store.set(k, v);
          },
        );
      } finally {
        await client.stop();
      }

      await t.step("after: what was stored before is read back; COUNT and SUM agree", async () => {
        // The destination's log on its drive: the source's records, then its own, appended at
        // the position the open file had when the guest left.
        const records = logRecords(commands);
        assert.deepEqual(await imageLog(image("dst")), records);
        const bytes = records.reduce((n, r) => n + new TextEncoder().encode(r).length + 1, 0);
        const n = answers(srcOut, dstOut).length;
        const asked = ["GET pre:7", "GET fill:1234", "GET nothing", "PERSIST off"];
        // Replayed onto the same store (fd_seek, fd_read), the log changes nothing.
        for (const c of [...asked, "PERSIST disk0", "COUNT", "SUM", "PERSIST off"]) {
          await send(dst, c);
        }
        const got = (await waitAnswers(n + 8, "8 more answers")).slice(n);
        assert.deepEqual(got, [
          "VALUE v7",
          `VALUE ${fillValue(1234, 4096)}`,
          "NOT_FOUND",
          "OK",
          `OK PERSIST records=${records.length} bytes=${bytes}`,
          `COUNT ${store.size}`,
          `SUM ${kvSum(store)}`,
          "OK",
        ]);
      });

      await t.step("at the --ram cap: ERR out of memory, and it serves on", async () => {
        const n = answers(srcOut, dstOut).length;
        for (const c of ["FILL 100000 1024 big:", "DEL big:0", "SET after full", "GET after"]) {
          await send(dst, c);
        }
        const got = (await waitAnswers(n + 4, "4 more answers")).slice(n);
        assert.match(got[0], /^ERR out of memory \(stored (\d+) of 100000\)$/);
        const stored = Number(/stored (\d+)/.exec(got[0])![1]);
        assert.ok(stored > 1000, `${stored} values of 1 KiB before the 32 MiB cap`);
        assert.deepEqual(got.slice(1), ["DELETED", "OK", "VALUE full"]);
        const m = (await dst.api<Json>("GET", "/machine")).body;
        assert.equal(m.runstate, "running");
        assert.equal(m["x-guest"]["exit-code"], null);
      });
      srcOut.close();
      dstOut.close();
    });
  } finally {
    await w.done();
  }
});

/**
 * Two kvstore agents (`env` added to theirs) in COLO: the primary `p` and its secondary `s`,
 * with no periodic checkpoint (only the output compare, or its timeout, starts one).
 */
async function coloPair(track: Track, env: Record<string, string> = {}) {
  const kvstore = (await buildGuest("kvstore")).path;
  const start = (args: string[]) =>
    startAgent(["--ram", "32M", "--guest", `wasm:${kvstore}`, ...args], [], undefined, env);
  const p = track(await start([]));
  const s = track(await start(["--incoming", "tcp:127.0.0.1:0"]));
  for (const a of [p, s]) {
    assert.equal((await a.api("PATCH", "/capabilities", { "x-colo": true })).status, 200);
  }
  await p.api("PATCH", "/parameters", {
    "x-checkpoint-delay": 600_000,
    "max-bandwidth": 10 * 1024 ** 3,
  });
  assert.equal((await p.api("POST", "/migrations", { uri: s.incomingUri })).status, 202);
  for (const a of [p, s]) {
    assert.equal((await a.waitStatus(/^(colo|completed|failed)$/)).status, "colo");
  }
  return { p, s };
}

Deno.test("kvstore guest under COLO: the client's input reaches both guests, equal answers are released by the compare, a clock read by a checkpoint; a failover keeps the store", async () => {
  await withAgents(async (track) => {
    // No periodic checkpoint during the test: only the output compare releases answers (or
    // its timeout, 3 s, through a triggered checkpoint: what happens when the secondary's
    // guest never got the input).
    const { p, s } = await coloPair(track);
    const pOut = await readOutput(p);
    const sOut = await readOutput(s);
    const colo = async () => (await p.api<Json>("GET", "/migrations/current")).body["x-colo"];
    /** Sends `command` to `to` and waits for answer number `seq` there. */
    const ask = async (to: typeof p, out: OutputReader, command: string, seq: number) => {
      const r = await fetch(`${to.base}/machine/input`, { method: "POST", body: `${command}\n` });
      assert.equal(r.status, 202, await r.text());
      return (await out.waitFor((x) => x.seq === seq, `answer ${seq}, to ${command}`)).text;
    };
    // One at a time: the kvstore answers what it read in one batch, and the two guests may
    // read two quick inputs in different batches.
    assert.equal(await ask(p, pOut, "SET a 1", 1), "OK\n");
    assert.equal(await ask(p, pOut, "SET b 2", 2), "OK\n");
    assert.equal(await ask(p, pOut, "GET a", 3), "VALUE 1\n");
    const x = await colo();
    assert.equal(x["checkpoints-triggered"], 0, `released by the compare: ${JSON.stringify(x)}`);
    assert.equal(x["records-mismatched"], 0, JSON.stringify(x));
    assert.ok(x["records-compared"] >= 3, JSON.stringify(x));
    // The host's clock differs on the two sides: a mismatch, a checkpoint, then released.
    const time = await ask(p, pOut, "TIME", 4);
    assert.match(time, /^TIME \d+\n$/);
    const y = await colo();
    assert.ok(y["records-mismatched"] >= 1 && y["checkpoints-triggered"] >= 1, JSON.stringify(y));
    // The primary dies: the secondary runs on with the store the client built, and holds the
    // primary's answers (its own TIME was replaced by the checkpoint).
    p.kill("SIGKILL");
    await p.exited;
    await waitFor("the secondary to leave COLO", async () => {
      return (await s.api<Json>("GET", "/colo")).body.mode === "none";
    });
    // While COLO ran the secondary released nothing (only the primary does); now it shows
    // what it holds: the primary's answers, its own TIME replaced by the checkpoint's.
    assert.equal(await ask(s, sOut, "GET b", 5), "VALUE 2\n");
    assert.deepEqual(sOut.records.map((r: Json) => r.seq), [1, 2, 3, 4, 5], "none twice");
    const mine = new Map(sOut.records.map((r: Json) => [r.seq, r.text]));
    for (const r of pOut.records) assert.equal(mine.get(r.seq), r.text, `record ${r.seq}`);
    pOut.close();
    sOut.close();
  });
});

Deno.test("kvstore guest under COLO: input sent while the primary holds waits, bounded by the 1 MiB of unread input, and reaches the guest when it runs on", async () => {
  await withAgents(async (track) => {
    // A link timeout of 3 s: a frozen secondary is noticed (the primary holds) within it.
    const { p, s } = await coloPair(track, { FERRY_LINK_TIMEOUT_MS: "3000" });
    const out = await readOutput(p);
    const send = (text: string | Uint8Array<ArrayBuffer>) =>
      fetch(`${p.base}/machine/input`, { method: "POST", body: text });
    let r = await send("SET a 1\n");
    assert.equal(r.status, 202, await r.text());
    assert.equal((await out.waitFor((x) => x.seq === 1, "the answer to SET a")).text, "OK\n");
    s.kill("SIGSTOP"); // silent: the primary holds, its guest stopped, nothing given to it
    try {
      await waitFor(
        "the primary to hold",
        async () => (await p.api<Json>("GET", "/colo")).body.reason === "processing",
      );
      r = await send("SET b 2\n");
      assert.equal(r.status, 202, await r.text());
      // What waits for the hold counts against the guest's 1 MiB of unread input: 64 KiB
      // bodies (the largest a request may have) of empty lines (the store ignores them) are
      // taken while 8 bytes + 15 of them fit, and the 16th is refused, where every one used to
      // be accepted and queued for as long as the hold lasted.
      const lines = new Uint8Array(64 * 1024).fill(0x0a);
      for (let i = 1; i <= 15; i++) {
        r = await send(lines);
        assert.equal(r.status, 202, `body ${i}: ${await r.text()}`);
      }
      r = await send(lines);
      assert.equal(r.status, 409);
      assert.match((await r.json()).detail, /unread input fills its buffer/);
      // No proof the secondary died: the operator says so, and the primary runs on.
      assert.equal((await p.api("POST", "/colo/lost-heartbeat")).status, 202);
      await waitFor(
        "the primary to leave colo",
        async () => (await p.api<Json>("GET", "/colo")).body.mode === "none",
      );
    } finally {
      s.kill("SIGKILL"); // frozen: the guest runs on the primary alone now
    }
    // The input accepted during the hold was given to the guest as it ran on.
    assert.equal((await out.waitFor((x) => x.seq === 2, "the answer to SET b")).text, "OK\n");
    r = await send("GET b\n");
    assert.equal(r.status, 202, await r.text());
    assert.equal((await out.waitFor((x) => x.seq === 3, "the answer to GET b")).text, "VALUE 2\n");
    out.close();
  });
});
