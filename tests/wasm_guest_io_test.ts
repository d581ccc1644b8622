/**
 * Issue 22, end to end: WebAssembly (WASI preview1) programs as the guest of real agents.
 * The guests are built here from WebAssembly text with npm binaryen; the ticker is the
 * acceptance check's program (written outside the project). Each test prepares its modules
 * in its own cache directory, removed afterwards.
 */
import assert from "node:assert/strict";
import { type Json, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { refusedStart } from "./helpers/refused_start.ts";
import { ECHO_WAT, readOutput, waitMachine, wasmOf, workDir } from "./helpers/wasm_guest.ts";

/** Traps at once (unreachable) after one line of output. */
const TRAP_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "about to trap\\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 100))
    (i32.store (i32.const 4) (i32.const 14))
    (drop (call $write (i32.const 2) (i32.const 0) (i32.const 1) (i32.const 8)))
    unreachable))`;

/** Imports something WASI does not have. */
const FOREIGN_WAT = `(module
  (import "env" "launch_missiles" (func $f))
  (memory (export "memory") 1)
  (func (export "_start") (call $f)))`;

Deno.test("wasm guest: stdin from POST /machine/input, stdout as output records, exit code", async () => {
  const w = await workDir({ "echo.wasm": await wasmOf(ECHO_WAT) });
  try {
    await withAgents(async (track) => {
      const a = track(
        await startLocalAgent(
          ["--ram", "1M", "--guest", `wasm:${w.dir}/echo.wasm`],
        ),
      );
      const m = (await a.api<Json>("GET", "/machine")).body;
      assert.equal(m.runstate, "running");
      assert.equal(m["x-guest"].kind, "wasm");
      assert.equal(m["x-guest"]["exit-code"], null);
      const out = await readOutput(a);
      // One line at a time: a read takes whatever input is there.
      for (const line of ["hello\n", "world\n"]) {
        const r = await fetch(`${a.base}/machine/input`, { method: "POST", body: line });
        assert.equal(r.status, 202, await r.text());
        await out.waitFor((r) => r.text === `got: ${line}`, `answering ${line.trim()}`);
      }
      assert.deepEqual(out.records.map((r) => [r.seq, r.stream, r.text]), [
        [1, "stdout", "got: hello\n"],
        [2, "stdout", "got: world\n"],
      ]);
      // Stop and cont while it waits for input, then it still answers.
      assert.equal((await a.api("POST", "/machine/stop")).status, 202);
      assert.equal((await a.api<Json>("GET", "/machine")).body.runstate, "paused");
      assert.equal(
        (await fetch(`${a.base}/machine/input`, { method: "POST", body: "again\n" })).status,
        202,
      );
      assert.equal((await a.api("POST", "/machine/cont")).status, 202);
      await out.waitFor((r) => r.text === "got: again\n", "after stop and cont");
      // A reconnecting reader resumes after Last-Event-ID.
      const late = await readOutput(a, "2");
      await late.waitFor((r) => r.seq === 3, "replayed after Last-Event-ID 2");
      assert.deepEqual(late.records.map((r) => r.seq), [3]);
      late.close();
      await fetch(`${a.base}/machine/input`, { method: "POST", body: "q\n" });
      const ended = await waitMachine(a, (x) => x.runstate === "shutdown", "shut down");
      assert.equal(ended["x-guest"]["exit-code"], 7);
      const refused = await fetch(`${a.base}/machine/input`, { method: "POST", body: "more\n" });
      assert.equal(refused.status, 409);
      assert.match((await refused.json()).detail, /takes no input/);
      assert.equal((await a.api("POST", "/machine/cont")).status, 409);
      out.close();
    });
  } finally {
    await w.done();
  }
});

Deno.test("wasm guest: hostile modules fail clearly; a trapping one leaves the agent serving", async () => {
  const w = await workDir({
    "junk.wasm": new TextEncoder().encode("this is not wasm"),
    "foreign.wasm": await wasmOf(FOREIGN_WAT),
    "trap.wasm": await wasmOf(TRAP_WAT),
    "echo.wasm": await wasmOf(ECHO_WAT),
  });
  try {
    const cases: [string[], RegExp][] = [
      [["--guest", `wasm:${w.dir}/junk.wasm`], /wasm guest: not a WebAssembly module/],
      [["--guest", `wasm:${w.dir}/foreign.wasm`], /wasm guest: it imports env\.launch_missiles/],
      [["--guest", `wasm:${w.dir}/missing.wasm`], /wasm guest: cannot read/],
      [["--guest", `wasm:${w.dir}/echo.wasm`, "--workload", "increment"], /exclude each other/],
      [["--guest", `wasm:${w.dir}/echo.wasm`, "--ram", "65537"], /not a positive multiple|64 KiB/],
    ];
    // The first as the user meets it, from the agent process; every one as boot.ts refuses
    // it (cli.ts's checks, the guest's own), which main.ts turns into that output.
    const r = await refusedStart(cases[0][0]);
    assert.equal(r.listened, false, cases[0][0].join(" "));
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, cases[0][1]);
    for (const [args, want] of cases) await assert.rejects(() => startLocalAgent(args), want);
    await withAgents(async (track) => {
      const a = track(
        await startLocalAgent(
          ["--ram", "1M", "--guest", `wasm:${w.dir}/trap.wasm`],
        ),
      );
      const m = await waitMachine(a, (x) => x.runstate === "guest-panicked", "panicked");
      assert.match(m["x-guest"].error, /unreachable/);
      const out = await readOutput(a);
      await out.waitFor(
        (r) => r.stream === "stderr" && r.text === "about to trap\n",
        "before the trap",
      );
      out.close();
      assert.equal((await a.api("GET", "/healthz")).status, 200);
      assert.equal((await a.api("POST", "/machine/cont")).status, 409);
    });
  } finally {
    await w.done();
  }
});
