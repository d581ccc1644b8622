/**
 * Helpers shared by the codec tests.
 *
 * @module
 */
import assert from "node:assert/strict";
import { CodecError } from "../domain/codecs/codec_error.ts";

/** Bytes per page in the codec tests. */
export const PAGE = 4096;

/** A page of text-like bytes: compressible, but not trivially; `salt` varies the text. */
export function textPage(salt: number): Uint8Array {
  const words = ["ferry", "page", "dirty", "guest", "ram", "sync", "block", "vcpu", "zero"];
  const p = new Uint8Array(PAGE);
  let x = (salt * 2654435761 + 1) >>> 0;
  for (let i = 0; i < PAGE;) {
    x = (x * 1103515245 + 12345) >>> 0;
    for (const ch of words[x % words.length] + " ") if (i < PAGE) p[i++] = ch.charCodeAt(0);
  }
  return p;
}

/** Asserts that `fn` throws a `CodecError` whose message matches `message`. */
export function throwsCodec(fn: () => unknown, message: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof CodecError, `expected CodecError, got ${e}`);
    assert.match(e.message, message);
    return true;
  });
}

/**
 * Names of this process's Worker threads (Deno names them `worker-<id>`, ids never reused),
 * or null where /proc is missing (not Linux).
 */
export function workerThreads(): Set<string> | null {
  try {
    const names = new Set<string>();
    for (const t of Deno.readDirSync("/proc/self/task")) {
      try {
        const name = Deno.readTextFileSync(`/proc/self/task/${t.name}/comm`).trim();
        if (name.startsWith("worker-")) names.add(name);
      } catch {
        // the thread ended while we looked
      }
    }
    return names;
  } catch {
    return null;
  }
}
