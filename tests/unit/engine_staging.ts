/**
 * The source's staging (domain/engine/staging.ts): what a switchover counts as already on its
 * way — bytes staged and bytes handed to the sink whose writes have not finished — and that a
 * retarget (a resumed postcopy's new connection) drops the old sink's.
 */
import assert from "node:assert/strict";
import { type ByteSink, Staging, STAGING_BYTES } from "../../domain/engine/staging.ts";

/** A sink whose writes finish (or fail) when the test says. */
function heldSink() {
  const pending: { bytes: number; done: () => void; fail: (e: Error) => void }[] = [];
  const sink: ByteSink = {
    write: (p) => new Promise<void>((done, fail) => pending.push({ bytes: p.length, done, fail })),
  };
  return { sink, pending };
}

/** Lets settled writes' reactions run. */
const turn = () => new Promise((r) => setTimeout(r, 0));

Deno.test("staging: unwritten counts staged bytes and writes not finished, in and out", async () => {
  const { sink, pending } = heldSink();
  const st = new Staging(sink);
  await st.append(new Uint8Array(1000));
  assert.equal(st.unwritten, 1000, "staged");
  const swapped = st.swap(); // hands the 1000 bytes to the sink; the other buffer is free
  await swapped;
  assert.equal(pending.length, 1);
  assert.equal(st.unwritten, 1000, "handed to the sink, not written yet");
  const big = new Uint8Array(STAGING_BYTES / 2);
  const queued = st.queue(big);
  await queued;
  assert.equal(st.unwritten, 1000 + big.length);
  await st.append(new Uint8Array(10));
  assert.equal(st.unwritten, 1010 + big.length);
  pending[0].done();
  await turn();
  assert.equal(st.unwritten, 10 + big.length, "a finished write no longer counts");
  pending[1].fail(new Error("broken pipe"));
  await turn();
  assert.equal(st.unwritten, 10, "nor does a failed one (the migration fails on it)");
});

Deno.test("staging: a retarget drops the old sink's writes from unwritten, for good", async () => {
  const old = heldSink();
  const st = new Staging(old.sink);
  await st.queue(new Uint8Array(4096));
  await st.append(new Uint8Array(100));
  assert.equal(st.unwritten, 4196);
  const fresh = heldSink();
  st.retarget(fresh.sink);
  assert.equal(st.unwritten, 0, "what was staged for the old sink is dropped");
  await st.queue(new Uint8Array(50));
  assert.equal(st.unwritten, 50);
  old.pending[0].done(); // the old sink's write finishing late does not count here
  await turn();
  assert.equal(st.unwritten, 50);
  fresh.pending[0].done();
  await turn();
  assert.equal(st.unwritten, 0);
});
