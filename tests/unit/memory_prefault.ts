/**
 * Prefaulting grown guest RAM on a destination (adapters/memory/prefault.ts): the range
 * becomes resident without a byte of it changing, also while the data path writes into it,
 * and a stop ends it after the chunk under way.
 */
import assert from "node:assert/strict";
import { PREFAULT_CHUNK, prefaultDown } from "../../adapters/memory/prefault.ts";
import { residentBytes } from "../helpers/resident.ts";

const MIB = 1 << 20;

/** A growable buffer as a WebAssembly guest's memory is: 256 KiB in use, grown to `mib`. */
function grown(mib: number): SharedArrayBuffer {
  const buf = new SharedArrayBuffer(256 * 1024, { maxByteLength: 64 * MIB });
  buf.grow(mib * MIB);
  return buf;
}

Deno.test("prefault: a grown range becomes resident and keeps every byte written to it", async () => {
  const buf = grown(24);
  const u8 = new Uint8Array(buf);
  const from = 256 * 1024;
  u8[from + 5 * 4096 + 7] = 42; // written before it starts
  const before = residentBytes(buf);
  assert.ok(before < 4 * MIB, `the grown range starts out not resident (${before} bytes)`);
  const running = prefaultDown(buf, from, buf.byteLength);
  // Written while it runs, low in the range (the stream fills RAM from the start up) and high.
  u8[from + 9 * 4096] = 9;
  u8[buf.byteLength - 1] = 7;
  const done = await running;
  const span = buf.byteLength - from;
  assert.ok(done > span - 2 * 4096 && done <= span, `populated ${done} of ${span} bytes`);
  assert.ok(residentBytes(buf) >= before + done - 4096, "the range is resident now");
  assert.equal(u8[from + 5 * 4096 + 7], 42);
  assert.equal(u8[from + 9 * 4096], 9);
  assert.equal(u8[buf.byteLength - 1], 7);
  let others = 0;
  for (let i = from; i < buf.byteLength; i += 512) others += u8[i];
  assert.equal(others, 9, "every other byte sampled is still zero");
});

Deno.test("prefault: it works from the end down, and a stop ends it after one chunk", async () => {
  const buf = grown(24);
  const from = 256 * 1024;
  let calls = 0;
  const done = await prefaultDown(buf, from, buf.byteLength, () => calls++ > 0);
  assert.equal(done, PREFAULT_CHUNK, "one chunk, then the stop");
  const top = residentBytes(buf, buf.byteLength - PREFAULT_CHUNK);
  assert.ok(top >= PREFAULT_CHUNK - 4096, `the top chunk is resident (${top} bytes)`);
  const below = residentBytes(buf, from, buf.byteLength - PREFAULT_CHUNK - from);
  assert.ok(below < MIB, `the rest is not (${below} bytes)`);
});
