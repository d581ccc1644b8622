/**
 * Issue 22, end to end: WebAssembly (WASI preview1) programs as the guest of real agents.
 * The guests are built here from WebAssembly text with npm binaryen; the ticker is the
 * acceptance check's program (written outside the project). Each test prepares its modules
 * in its own cache directory, removed afterwards.
 */
import assert from "node:assert/strict";
import binaryen from "binaryen";
import { type AgentProcess, type Json, startAgent, withAgents } from "./helpers/agent_process.ts";
import { sseItems } from "./helpers/sse.ts";

const TICKER = new URL("../../shared/acceptance/guests/ticker.wasm", import.meta.url);

/** The echo guest: reads stdin lines, answers "got: LINE"; "q" exits with code 7. */
const ECHO_WAT = `(module
  (import "wasi_snapshot_preview1" "fd_read" (func $read (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 100) "got: ")
  (func (export "_start") (local $n i32)
    (loop $again
      ;; iovec at 0: buffer 105.., 900 bytes; nread at 8
      (i32.store (i32.const 0) (i32.const 105))
      (i32.store (i32.const 4) (i32.const 900))
      (drop (call $read (i32.const 0) (i32.const 0) (i32.const 1) (i32.const 8)))
      (local.set $n (i32.load (i32.const 8)))
      (if (i32.eq (i32.load8_u (i32.const 105)) (i32.const 113)) (then (call $exit (i32.const 7))))
      (i32.store (i32.const 16) (i32.const 100))
      (i32.store (i32.const 20) (i32.add (local.get $n) (i32.const 5)))
      (drop (call $write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 24)))
      (br $again))))`;

function wasmOf(wat: string): Uint8Array {
  const m = binaryen.parseText(wat);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/** A temp dir holding `files` (name → bytes) and a module cache; removed by the returned fn. */
async function workDir(
  files: Record<string, Uint8Array>,
): Promise<{ dir: string; env: Record<string, string>; done: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-wasm-test-" });
  for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(`${dir}/${name}`, bytes);
  return {
    dir,
    env: { FERRY_WASM_CACHE: `${dir}/cache` },
    done: () => Deno.remove(dir, { recursive: true }),
  };
}

interface OutputReader {
  records: Json[];
  waitFor(pred: (r: Json) => boolean, what: string, timeoutMs?: number): Promise<Json>;
  close(): void;
}

/** Reads `GET /machine/output` into `records`. */
async function readOutput(a: AgentProcess, lastEventId?: string): Promise<OutputReader> {
  const ac = new AbortController();
  const r = await fetch(`${a.base}/machine/output`, {
    signal: ac.signal,
    headers: lastEventId ? { "last-event-id": lastEventId } : {},
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type") ?? "", /text\/event-stream/);
  const records: Json[] = [];
  const reader = sseItems(r.body!).getReader();
  (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value.kind !== "event") continue;
        assert.equal(value.event, "output");
        const rec = JSON.parse(value.data);
        assert.equal(value.id, String(rec.seq));
        records.push(rec);
      }
    } catch { /* aborted */ }
  })();
  return {
    records,
    async waitFor(pred, what, timeoutMs = 30_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = records.find(pred);
        if (hit) return hit;
        if (Date.now() > end) {
          throw new Error(`no output record ${what}; got ${JSON.stringify(records.slice(-5))}`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    close: () => ac.abort(),
  };
}

async function waitMachine(a: AgentProcess, pred: (m: Json) => boolean, what: string) {
  const end = Date.now() + 30_000;
  for (;;) {
    const m = (await a.api<Json>("GET", "/machine")).body;
    if (pred(m)) return m;
    if (Date.now() > end) throw new Error(`machine never ${what}: ${JSON.stringify(m)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("wasm guest: the ticker migrates mid-run, its output numbered on without gap or repeat", async () => {
  const w = await workDir({});
  const ticker = `wasm:${TICKER.pathname}`;
  try {
    await withAgents(async (track) => {
      const dst = track(
        await startAgent(
          ["--ram", "16M", "--guest", ticker, "--incoming", "tcp:127.0.0.1:0"],
          [],
          undefined,
          w.env,
        ),
      );
      const src = track(
        await startAgent(["--ram", "16M", "--guest", ticker], [], undefined, w.env),
      );
      const srcOut = await readOutput(src);
      await srcOut.waitFor((r) => r.seq >= 20, "20 ticks on the source");
      await src.api("PATCH", "/parameters", { "max-bandwidth": 10 * 2 ** 30 });
      const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
      assert.equal(r.status, 202, JSON.stringify(r.body));
      const info = await src.waitStatus(/completed|failed|cancelled/);
      assert.equal(info.status, "completed", JSON.stringify(info));
      const last = srcOut.records.at(-1).seq;
      const dstOut = await readOutput(dst);
      await dstOut.waitFor((x) => x.seq > last + 20, "20 ticks on the destination");
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
    });
  } finally {
    await w.done();
  }
});

Deno.test("wasm guest: a destination with another module refuses the state; the source runs on", async () => {
  const w = await workDir({ "echo.wasm": wasmOf(ECHO_WAT) });
  try {
    await withAgents(async (track) => {
      const dst = track(
        await startAgent(
          ["--ram", "16M", "--guest", `wasm:${w.dir}/echo.wasm`, "--incoming", "tcp:127.0.0.1:0"],
          [],
          undefined,
          w.env,
        ),
      );
      const src = track(
        await startAgent(
          ["--ram", "16M", "--guest", `wasm:${TICKER.pathname}`],
          [],
          undefined,
          w.env,
        ),
      );
      // With the return path the source learns of the refusal and runs on.
      assert.equal((await src.api("PATCH", "/capabilities", { "return-path": true })).status, 200);
      await src.api("PATCH", "/parameters", { "max-bandwidth": 10 * 2 ** 30 });
      const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
      assert.equal(r.status, 202);
      const info = await src.waitStatus(/completed|failed|cancelled/);
      assert.equal(info.status, "failed");
      const d = await dst.waitStatus(/completed|failed/);
      assert.match(
        d["error-desc"] ?? "",
        /guest module sha256 [0-9a-f]{64}, this machine [0-9a-f]{64}/,
      );
      await waitMachine(src, (m) => m.runstate === "running", "running again on the source");
    });
  } finally {
    await w.done();
  }
});

Deno.test("wasm guest: postcopy is refused with the reason", async () => {
  const w = await workDir({});
  try {
    await withAgents(async (track) => {
      const src = track(
        await startAgent(
          ["--ram", "16M", "--guest", `wasm:${TICKER.pathname}`],
          [],
          undefined,
          w.env,
        ),
      );
      assert.equal((await src.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
      const r = await src.api<Json>("POST", "/migrations", { uri: "tcp:127.0.0.1:1" });
      assert.equal(r.status, 409);
      assert.match(r.body.detail, /Postcopy is not supported for a WebAssembly guest/);
      assert.equal((await src.api<Json>("GET", "/machine")).body.runstate, "running");
    });
  } finally {
    await w.done();
  }
});
