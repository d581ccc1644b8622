import assert from "node:assert/strict";
import fc from "fast-check";
import { BrokenPipeError, ChannelClosedError } from "../../adapters/channels/errors.ts";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { pseudoRandomBytes, readAll, within } from "../channels_helpers.ts";

Deno.test("memory pair: bounded buffer; a write waits until the peer reads", async () => {
  const [a, b] = memoryChannelPair(16);
  const data = pseudoRandomBytes(40, 1);
  assert.equal(await a.write(data), 16); // takes what fits
  const blocked = a.write(data.subarray(16));
  assert.equal(await within(blocked, 30), "timeout"); // full: waits
  const buf = new Uint8Array(10);
  assert.equal(await b.read(buf), 10);
  assert.deepEqual(buf, data.subarray(0, 10));
  assert.equal(await blocked, 10); // room for 10 only
  assert.equal(b.readable, 16);
  a.close();
  b.close();
});

Deno.test("memory pair: a read waits for data; closeWrite gives end of stream after it", async () => {
  const [a, b] = memoryChannelPair(8);
  const buf = new Uint8Array(8);
  const pending = b.read(buf);
  assert.equal(await within(pending, 30), "timeout");
  assert.equal(await a.write(Uint8Array.of(1, 2, 3)), 3);
  assert.equal(await pending, 3);
  assert.deepEqual(buf.subarray(0, 3), Uint8Array.of(1, 2, 3));
  await a.write(Uint8Array.of(4, 5));
  await a.closeWrite();
  await assert.rejects(a.write(Uint8Array.of(6)), ChannelClosedError);
  assert.deepEqual(await readAll(b), Uint8Array.of(4, 5));
  assert.equal(await b.read(buf), null);
  // The other direction is still open after a half-close.
  await b.write(Uint8Array.of(9));
  assert.equal(await a.read(buf), 1);
  assert.equal(buf[0], 9);
  a.close();
  b.close();
});

Deno.test("memory pair: close rejects own pending ops, peer reads null, peer writes break", async () => {
  const [a, b] = memoryChannelPair(4);
  await b.write(Uint8Array.of(1, 2, 3, 4));
  const pendingRead = a.read(new Uint8Array(0)); // zero-length read returns at once
  assert.equal(await pendingRead, 0);
  await a.write(Uint8Array.of(7, 8));
  const ownWrite = a.write(Uint8Array.of(1, 2, 3)); // only 2 bytes of room: takes 2
  assert.equal(await ownWrite, 2);
  const ownBlocked = a.write(Uint8Array.of(5));
  const peerBlocked = b.write(Uint8Array.of(5));
  assert.equal(await within(ownBlocked, 20), "timeout");
  assert.equal(await within(peerBlocked, 20), "timeout");
  a.close();
  a.close(); // safe twice
  await assert.rejects(ownBlocked, ChannelClosedError);
  await assert.rejects(peerBlocked, BrokenPipeError);
  await assert.rejects(a.read(new Uint8Array(1)), ChannelClosedError);
  await assert.rejects(a.write(Uint8Array.of(1)), ChannelClosedError);
  await assert.rejects(a.closeWrite(), ChannelClosedError);
  // What a wrote before closing still arrives, then end of stream.
  assert.deepEqual(await readAll(b), Uint8Array.of(7, 8, 1, 2));
  await assert.rejects(b.write(Uint8Array.of(1)), BrokenPipeError);
  b.close();
});

Deno.test("memory pair: a pending read on the closing end rejects", async () => {
  const [a, b] = memoryChannelPair();
  const pending = a.read(new Uint8Array(4));
  a.close();
  await assert.rejects(pending, ChannelClosedError);
  assert.equal(await b.read(new Uint8Array(4)), null);
  b.close();
});

Deno.test("memory pair: bytes arrive intact and in order for any write/read sizes (property)", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  await fc.assert(
    fc.asyncProperty(
      fc.integer({ min: 1, max: 64 }),
      fc.array(fc.integer({ min: 0, max: 100 }), { maxLength: 30 }),
      fc.array(fc.integer({ min: 1, max: 50 }), { minLength: 1, maxLength: 10 }),
      async (capacity, writeSizes, readSizes) => {
        const [a, b] = memoryChannelPair(capacity);
        const total = writeSizes.reduce((s, n) => s + n, 0);
        const data = pseudoRandomBytes(total, capacity);
        const send = (async () => {
          let off = 0;
          for (const size of writeSizes) {
            const end = off + size;
            while (off < end) off += await a.write(data.subarray(off, end));
          }
          await a.closeWrite();
        })();
        const got: number[] = [];
        for (let i = 0;; i++) {
          const buf = new Uint8Array(readSizes[i % readSizes.length]);
          const n = await b.read(buf);
          if (n === null) break;
          assert.ok(n > 0 && n <= buf.length && n <= capacity);
          got.push(...buf.subarray(0, n));
        }
        await send;
        a.close();
        b.close();
        assert.deepEqual(Uint8Array.from(got), data);
      },
    ),
    { seed, numRuns: 200 },
  );
});

Deno.test("memory pair: rejects a bad capacity", () => {
  assert.throws(() => memoryChannelPair(0), RangeError);
  assert.throws(() => memoryChannelPair(1.5), RangeError);
});
