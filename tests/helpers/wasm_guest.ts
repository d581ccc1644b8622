/**
 * Test helper for the WebAssembly guest tests: the echo guest's source, WebAssembly text built
 * with npm binaryen, a temp dir with its own module cache, a reader of `GET /machine/output`
 * and a wait on `GET /machine`.
 *
 * @module
 */
import assert from "node:assert/strict";
import { backoff } from "../../harness/wait.ts";
import { type Json, type TestAgent } from "../../harness/agent_process.ts";
import { sseItems } from "./sse.ts";

/** The echo guest: reads stdin lines, answers "got: LINE"; "q" exits with code 7. */
export const ECHO_WAT = `(module
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

/** The binary of WebAssembly text `wat` (binaryen loads on first use: ~1 s of CPU). */
export async function wasmOf(wat: string): Promise<Uint8Array> {
  const { default: binaryen } = await import("binaryen");
  const m = binaryen.parseText(wat);
  try {
    return m.emitBinary();
  } finally {
    m.dispose();
  }
}

/**
 * A temp dir holding `files` (name → bytes); removed by the returned fn. The agents prepare
 * modules into their default cache (`~/.cache/ferry/wasm`), which every test and clone shares:
 * preparing one (binaryen: asyncify and the store instrumentation) costs 1.5–3.5 s of CPU.
 */
export async function workDir(
  files: Record<string, Uint8Array>,
): Promise<{ dir: string; done: () => Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-wasm-test-" });
  for (const [name, bytes] of Object.entries(files)) await Deno.writeFile(`${dir}/${name}`, bytes);
  return {
    dir,
    done: () => Deno.remove(dir, { recursive: true }),
  };
}

/** What `readOutput` gives: the records so far, a wait on one, and close. */
export interface OutputReader {
  records: Json[];
  waitFor(pred: (r: Json) => boolean, what: string, timeoutMs?: number): Promise<Json>;
  close(): void;
}

/** Reads `GET /machine/output` into `records`. */
export async function readOutput(a: TestAgent, lastEventId?: string): Promise<OutputReader> {
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
      const pause = backoff();
      for (;;) {
        const hit = records.find(pred);
        if (hit) return hit;
        if (Date.now() > end) {
          throw new Error(`no output record ${what}; got ${JSON.stringify(records.slice(-5))}`);
        }
        await new Promise((r) => setTimeout(r, pause()));
      }
    },
    close: () => ac.abort(),
  };
}

/** Polls `GET /machine` until `pred` holds (30 s at most). */
export async function waitMachine(a: TestAgent, pred: (m: Json) => boolean, what: string) {
  const end = Date.now() + 30_000;
  const pause = backoff();
  for (;;) {
    const m = (await a.api<Json>("GET", "/machine")).body;
    if (pred(m)) return m;
    if (Date.now() > end) throw new Error(`machine never ${what}: ${JSON.stringify(m)}`);
    await new Promise((r) => setTimeout(r, pause()));
  }
}
