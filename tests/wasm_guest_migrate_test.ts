/**
 * Issue 22, end to end: WebAssembly (WASI preview1) programs as the guest of real agents.
 * The guests are built here from WebAssembly text with npm binaryen; the ticker is the
 * acceptance check's program (written outside the project). The steps share one ticking
 * source: a refusal leaves it running for the next, and the migration that completes comes
 * last. Its modules go to a cache directory of its own, removed afterwards.
 */
import assert from "node:assert/strict";
import { type Json, startAgent, withAgents } from "./helpers/agent_process.ts";
import { ECHO_WAT, readOutput, waitMachine, wasmOf, workDir } from "./helpers/wasm_guest.ts";

/** The acceptance checks' ticker, built from its source in tests/guests/. */
const TICKER_WAT = new URL("./guests/ticker.wat", import.meta.url);

Deno.test("wasm guest: refusals leave the ticker running; it then migrates mid-run, its output numbered on", async (t) => {
  const w = await workDir({
    "echo.wasm": wasmOf(ECHO_WAT),
    "ticker.wasm": wasmOf(await Deno.readTextFile(TICKER_WAT)),
  });
  const ticker = `wasm:${w.dir}/ticker.wasm`;
  const start = (args: string[]) => startAgent(["--ram", "16M", ...args], [], undefined, w.env);
  try {
    await withAgents(async (track) => {
      const [src, echoDst] = await Promise.all(
        [
          ["--guest", ticker],
          ["--guest", `wasm:${w.dir}/echo.wasm`, "--incoming", "tcp:127.0.0.1:0"],
        ].map((args) => start(args).then(track)),
      );
      // After the source: the ticker's prepared module is then in the cache (one binaryen pass).
      const dst = track(await start(["--guest", ticker, "--incoming", "tcp:127.0.0.1:0"]));
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
        "a destination with another module refuses the state; the source runs on",
        async () => {
          // With the return path the source learns of the refusal and runs on.
          const on = await src.api("PATCH", "/capabilities", { "return-path": true });
          assert.equal(on.status, 200);
          const r = await src.api<Json>("POST", "/migrations", { uri: echoDst.incomingUri });
          assert.equal(r.status, 202);
          const info = await src.waitStatus(/completed|failed|cancelled/);
          assert.equal(info.status, "failed");
          const d = await echoDst.waitStatus(/completed|failed/);
          assert.match(
            d["error-desc"] ?? "",
            /guest module sha256 [0-9a-f]{64}, this machine [0-9a-f]{64}/,
          );
          await waitMachine(src, (m) => m.runstate === "running", "running again on the source");
          const off = await src.api("PATCH", "/capabilities", { "return-path": false });
          assert.equal(off.status, 200);
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
        },
      );
    });
  } finally {
    await w.done();
  }
});
