/**
 * Issue 22, end to end: WebAssembly (WASI preview1) programs as the guest of real agents.
 * The ticker is the acceptance check's program (written outside the project), built here from
 * its WebAssembly text with npm binaryen; the compute sample guest is built from its
 * AssemblyScript source (guests/build.ts). The steps share one ticking source: a refusal
 * leaves it running for the next, then it migrates; the compute pair comes last, its
 * destination (started with -S) being the one that refused the ticker. Prepared modules go
 * to a cache directory of the test's own, removed afterwards.
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { readOutput, waitMachine, wasmOf, workDir } from "./helpers/wasm_guest.ts";
import { buildGuest } from "../guests/build.ts";
import { waitFor } from "../harness/wait.ts";
import { RAM_SECTION } from "../domain/engine/ram_section.ts";
import {
  encodeConfig,
  encodeGuestModule,
  encodeRamUsed,
  encodeSectionEnd,
  encodeSectionStart,
  encodeStreamHeader,
  SectionKind,
} from "../domain/wire/mod.ts";

/**
 * A stream that names `sha256`'s module, then says the 16 MiB RAM block grows to 32 MiB: past
 * the destination's --ram.
 */
function growPastCap(sha256: string): Uint8Array {
  const frames = [
    encodeStreamHeader(),
    encodeConfig(4096, [{ name: "pc.ram", size: 16 << 20 }]),
    encodeSectionStart(SectionKind.SETUP, 0, RAM_SECTION),
    encodeGuestModule(sha256),
    encodeSectionEnd(SectionKind.SETUP, 0, RAM_SECTION.id),
    encodeSectionStart(SectionKind.ITERATE, 1, RAM_SECTION),
    encodeRamUsed(0, 32 << 20),
  ];
  const out = new Uint8Array(frames.reduce((n, f) => n + f.length, 0));
  frames.reduce((at, f) => (out.set(f, at), at + f.length), 0);
  return out;
}

/** The acceptance checks' ticker, built from its source in tests/guests/. */
const TICKER_WAT = new URL("./guests/ticker.wat", import.meta.url);

/** The compute guest's sieve array, MiB (its first argument). */
const COMPUTE_MIB = 4;

/** The primes below each n ≤ `size` (a sieve here, to check the guest's). */
function primesBelow(size: number): Uint32Array {
  const composite = new Uint8Array(size);
  const below = new Uint32Array(size + 1);
  for (let p = 2; p * p < size; p++) {
    if (!composite[p]) { for (let m = p * p; m < size; m += p) composite[m] = 1; }
  }
  for (let n = 2; n < size; n++) below[n + 1] = below[n] + (composite[n] ? 0 : 1);
  return below;
}

Deno.test("wasm guests: refusals leave the ticker running; the ticker, then the compute guest, migrate mid-run, their output numbered on", async (t) => {
  const w = await workDir({ "ticker.wasm": await wasmOf(await Deno.readTextFile(TICKER_WAT)) });
  const ticker = `wasm:${w.dir}/ticker.wasm`;
  const compute = `wasm:${(await buildGuest("compute")).path},args=${COMPUTE_MIB}`;
  const start = (args: string[]) => startLocalAgent(["--ram", "16M", ...args]);
  try {
    await withAgents(async (track) => {
      // The compute pair starts paused (-S): it runs only in its own step. Each module's
      // second agent starts after its first: the prepared module is then in the cache (one
      // binaryen pass per module).
      const [src, computeSrc] = await Promise.all(
        [["--guest", ticker], ["--guest", compute, "-S"]].map((args) => start(args).then(track)),
      );
      const [dst, computeDst] = await Promise.all(
        [
          ["--guest", ticker, "--incoming", "tcp:127.0.0.1:0"],
          ["--guest", compute, "--incoming", "tcp:127.0.0.1:0", "-S"],
        ].map((args) => start(args).then(track)),
      );
      const srcOut = await readOutput(src);
      // A few ticks on each side show it mid-run; the ticker keeps a core busy while it runs.
      await srcOut.waitFor((r) => r.seq >= 5, "5 ticks on the source");
      await src.api("PATCH", "/parameters", { "max-bandwidth": 10 * 2 ** 30 });

      await t.step("postcopy is refused with the reason", async () => {
        const on = await src.api("PATCH", "/capabilities", { "postcopy-ram": true });
        assert.equal(on.status, 200);
        const r = await src.api<Json>("POST", "/migrations", { uri: "tcp:127.0.0.1:1" });
        assert.equal(r.status, 409);
        assert.match(r.body.detail, /Postcopy is not supported for a WebAssembly guest/);
        assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "running");
        const off = await src.api("PATCH", "/capabilities", { "postcopy-ram": false });
        assert.equal(off.status, 200);
      });

      await t.step(
        "a destination with another module refuses it before any page lands; the source runs on",
        async () => {
          // With the return path the source learns of the refusal and runs on.
          const on = await src.api("PATCH", "/capabilities", { "return-path": true });
          assert.equal(on.status, 200);
          const digest = async (a: TestAgent) =>
            (await a.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
          const before = await digest(computeDst);
          const r = await src.api<Json>("POST", "/migrations", { uri: computeDst.incomingUri });
          assert.equal(r.status, 202);
          const info = await src.waitStatus(/completed|failed|cancelled/);
          assert.equal(info.status, "failed");
          const d = await computeDst.waitStatus(/completed|failed/);
          assert.match(
            d["error-desc"] ?? "",
            /guest module sha256 [0-9a-f]{64}, this machine [0-9a-f]{64}/,
          );
          // GUEST_MODULE comes in RAM's setup record: refused before the first page landed.
          assert.deepEqual(await digest(computeDst), before, "the destination's RAM untouched");
          assert.match(info["error-desc"] ?? "", /destination refused: .*guest module sha256/);
          await waitMachine(src, (m) => m.runstate === "running", "running again on the source");
          const off = await src.api("PATCH", "/capabilities", { "return-path": false });
          assert.equal(off.status, 200);
        },
      );

      await t.step(
        "a hostile stream growing the memory past --ram fails that attempt only",
        async () => {
          const machine = async () => (await computeDst.api<Json>("GET", "/machine")).body;
          const before = await machine();
          const port = Number(computeDst.incomingUri!.split(":").pop());
          const conn = await Deno.connect({ hostname: "127.0.0.1", port });
          try {
            const bytes = growPastCap(before["x-guest"].sha256);
            for (let at = 0; at < bytes.length;) at += await conn.write(bytes.subarray(at));
            await conn.closeWrite();
            const sink = new Uint8Array(4096);
            while (await conn.read(sink) !== null) { /* until the destination hangs up */ }
          } catch {
            /* reset by the destination: it gave the stream up */
          } finally {
            conn.close();
          }
          const info = await waitFor("the attempt refused for growing past --ram", async () => {
            const c = (await computeDst.api<Json>("GET", "/migrations/current")).body;
            return /past its maximum/.test(c["error-desc"] ?? "") && c;
          });
          assert.equal(info.status, "failed");
          assert.match(
            info["error-desc"],
            /RAM_USED: RAM block 'pc.ram' would grow to 33554432 bytes, past its maximum 16777216 \(--ram\)/,
          );
          const after = await machine();
          assert.equal(after.runstate, "inmigrate", "waiting for the next attempt");
          assert.equal(after.blocks[0].used, before.blocks[0].used, "the memory did not grow");
          // The compute guest's migration into it, below, is the next attempt.
        },
      );

      await t.step(
        "the ticker migrates mid-run, its output numbered on without gap or repeat",
        async () => {
          const ticked = srcOut.records.at(-1)?.seq ?? 0;
          await srcOut.waitFor((r) => r.seq >= ticked + 5, "5 more ticks on the source");
          const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          const info = await src.waitStatus(/completed|failed|cancelled/);
          assert.equal(info.status, "completed", JSON.stringify(info));
          const last = srcOut.records.at(-1).seq;
          const dstOut = await readOutput(dst);
          await dstOut.waitFor((x) => x.seq > last + 5, "5 ticks on the destination");
          srcOut.close();
          dstOut.close();
          const all = [...srcOut.records, ...dstOut.records];
          const srcSeqs = srcOut.records.map((x) => x.seq);
          assert.equal(dstOut.records[0].seq, last + 1, "the destination continues the numbering");
          for (const [i, rec] of all.entries()) {
            assert.equal(rec.seq, i + 1, `record ${i + 1} in order`);
            assert.equal(rec.text, `tick ${i + 1}\n`);
          }
          assert.deepEqual(srcSeqs, srcSeqs.map((_, i) => i + 1));
          assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "running");
          assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "postmigrate");
          // The ticker keeps a core busy: it stops here, the compute guest runs next.
          assert.equal((await dst.api("POST", "/machine/stop")).status, 202);
        },
      );

      await t.step(
        "the compute guest migrates while it sieves (multifd): its rounds go on, no gap, repeat or reorder",
        async () => {
          const srcOut = await readOutput(computeSrc);
          const dstOut = await readOutput(computeDst);
          // Unthrottled, as the ticker: the sieve rewrites 4 MiB every round. Over two page
          // channels: each says the memory's size (RAM_USED) before its first page of it.
          await computeSrc.api("PATCH", "/parameters", {
            "max-bandwidth": 10 * 2 ** 30,
            "x-multifd-channels": 2,
          });
          const mfd = await computeSrc.api("PATCH", "/capabilities", { "x-multifd": true });
          assert.equal(mfd.status, 200);
          assert.equal((await computeSrc.api("POST", "/machine/cont")).status, 202);
          await srcOut.waitFor((r) => r.seq >= 3, "3 rounds on the source");
          const r = await computeSrc.api<Json>("POST", "/migrations", {
            uri: computeDst.incomingUri,
          });
          assert.equal(r.status, 202, JSON.stringify(r.body));
          const info = await computeSrc.waitStatus(/completed|failed|cancelled/);
          assert.equal(info.status, "completed", JSON.stringify(info));
          // Every page sent whole went over the page channels (the sieve's own pace, which a
          // busy host slows, decides how many that is).
          assert.ok(info.ram["normal-bytes"] > 0, JSON.stringify(info.ram));
          assert.ok(
            info.ram["multifd-bytes"] >= info.ram["normal-bytes"],
            JSON.stringify(info.ram),
          );
          await waitMachine(computeDst, (m) => m.runstate === "paused", "paused (-S)");
          const digest = async (a: TestAgent) =>
            (await a.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
          assert.deepEqual(await digest(computeDst), await digest(computeSrc), "RAM as it left");
          assert.equal((await computeDst.api("POST", "/machine/cont")).status, 202);
          const last = srcOut.records.at(-1).seq;
          await dstOut.waitFor((x) => x.seq >= last + 3, "3 rounds on the destination");
          assert.equal((await computeDst.api("POST", "/machine/stop")).status, 202);
          srcOut.close();
          dstOut.close();
          const size = COMPUTE_MIB << 20;
          const below = primesBelow(size);
          let total = 0;
          for (const [i, rec] of [...srcOut.records, ...dstOut.records].entries()) {
            const round = i + 1;
            const limit = size - ((round * 7) % 16) * 65536;
            total += below[limit];
            assert.equal(rec.seq, round, `record ${round} in order`);
            assert.match(
              rec.text,
              new RegExp(
                `^round ${round} limit ${limit} primes ${below[limit]} total ${total} ms \\d+\n$`,
              ),
            );
          }
        },
      );
    });
  } finally {
    await w.done();
  }
});
