import assert from "node:assert/strict";
import { CodecError } from "../../domain/codecs/codec_error.ts";
import { CompressPool } from "../../domain/codecs/compress_pool.ts";
import { DecompressPool } from "../../domain/codecs/decompress_pool.ts";
import { zlib } from "../../domain/codecs/zlib.ts";
import { PAGE, textPage, workerThreads } from "../codec_helpers.ts";
import { waitFor } from "../../harness/wait.ts";

/** `n` pages: random ones when `random`, otherwise text-like. */
function pages(n: number, salt: number, random = false): Uint8Array {
  const b = new Uint8Array(n * PAGE);
  for (let k = 0; k < n; k++) {
    if (random) crypto.getRandomValues(b.subarray(k * PAGE, (k + 1) * PAGE));
    else b.set(textPage(salt * 1000 + k), k * PAGE);
  }
  return b;
}

/** Inflates `streams` on this thread, `unit` pages per stream. */
function inflateHere(streams: Uint8Array[], n: number, unit = 1): Uint8Array {
  const out = new Uint8Array(n * PAGE);
  streams.forEach((s, k) => {
    zlib.decompress(s, out.subarray(k * unit * PAGE, Math.min((k + 1) * unit, n) * PAGE));
  });
  return out;
}

Deno.test("codec pools: batches come back in submission order and round-trip", async () => {
  const cp = new CompressPool(3, 1, { maxBatch: 16 });
  const dp = new DecompressPool(2, { maxBatch: 16 });
  try {
    const staging = new Uint8Array(16 * PAGE);
    const sent: Uint8Array[] = [];
    const order: number[] = [];
    const jobs: Promise<Uint8Array[]>[] = [];
    for (let b = 0; b < 30; b++) {
      // slow batches (16 random pages at level 9) ahead of fast ones (1 page): they finish later
      const n = b % 3 === 0 ? 16 : 1 + (b % 5);
      const batch = pages(n, b, b % 3 === 0);
      cp.level = b % 3 === 0 ? 9 : 1;
      staging.set(batch);
      sent.push(batch);
      jobs.push(cp.compress(staging, n).then((r) => (order.push(b), r)));
      staging.fill(0xff); // the pool copied the batch: the caller may reuse its buffer at once
    }
    const streams = await Promise.all(jobs);
    assert.deepEqual(order, [...sent.keys()]);
    streams.forEach((s, b) => assert.deepEqual(inflateHere(s, sent[b].length / PAGE), sent[b]));
    const back: number[] = [];
    const out = await Promise.all(
      streams.map((s, b) => dp.decompress(s, s.length).then((p) => (back.push(b), p))),
    );
    assert.deepEqual(back, [...sent.keys()]);
    out.forEach((p, b) => assert.deepEqual(p, sent[b]));
    assert.equal(dp.pages, sent.reduce((a, s) => a + s.length / PAGE, 0));
  } finally {
    cp.close();
    dp.close();
  }
});

Deno.test("codec pools: several pages per stream", async () => {
  const cp = new CompressPool(2, 6, { pagesPerBlob: 8, maxBatch: 32 });
  const dp = new DecompressPool(1, { pagesPerBlob: 8, maxBatch: 32 });
  try {
    const batch = pages(13, 7);
    const streams = await cp.compress(batch, 13);
    assert.equal(streams.length, 2);
    assert.deepEqual(inflateHere(streams, 13, 8), batch);
    assert.deepEqual(await dp.decompress(streams, 13), batch);
    assert.throws(() => dp.decompress(streams.slice(0, 1), 13), RangeError);
    assert.throws(() => cp.compress(pages(33, 1), 33), RangeError);
    assert.throws(() => cp.compress(batch, 14), RangeError, "fewer bytes than pages");
  } finally {
    cp.close();
    dp.close();
  }
});

Deno.test("compress pool: tryCompress refuses when every thread is busy, counts busy", async () => {
  const cp = new CompressPool(2, 1);
  try {
    const a = cp.tryCompress(pages(8, 1), 8);
    const b = cp.tryCompress(pages(8, 2), 8);
    assert.ok(a && b, "two idle threads take two batches");
    assert.equal(cp.idle, 0);
    assert.equal(cp.tryCompress(pages(4, 3), 4), null, "no answer can arrive synchronously");
    assert.equal(cp.tryCompress(pages(2, 4), 2), null);
    let s = cp.stats();
    assert.deepEqual([s.busy, s.attempted, s.pages], [6, 22, 0]);
    assert.equal(s.busyRate, 6 / 22);
    await Promise.all([a, b]);
    assert.equal(cp.idle, 2);
    const c = cp.tryCompress(pages(1, 5), 1);
    assert.ok(c, "an idle thread takes the batch again");
    await c;
    s = cp.stats();
    assert.deepEqual([s.busy, s.attempted, s.pages], [6, 23, 17]);
  } finally {
    cp.close();
  }
});

Deno.test("compress pool: stats on compressible pages", async () => {
  const cp = new CompressPool(2, 1, { maxBatch: 32 });
  try {
    let bytes = 0;
    for (let b = 0; b < 4; b++) {
      for (const s of await cp.compress(pages(32, b), 32)) bytes += s.length;
    }
    const s = cp.stats();
    assert.equal(s.pages, 128);
    assert.equal(s.compressedSize, bytes);
    assert.ok(s.compressedSize < 128 * PAGE / 2, `${s.compressedSize} bytes for 128 text pages`);
    assert.equal(s.compressionRate, 128 * PAGE / s.compressedSize);
    assert.deepEqual([s.busy, s.busyRate, s.attempted], [0, 0, 128]);
    cp.level = 0; // stored: no smaller than the page
    const [stored] = await cp.compress(pages(1, 9), 1);
    assert.ok(stored.length > PAGE);
    assert.throws(() => (cp.level = 10), RangeError);
    assert.throws(() => new CompressPool(1, -1), RangeError);
    assert.throws(() => new CompressPool(0, 1), RangeError);
  } finally {
    cp.close();
  }
});

Deno.test("decompress pool: a bad batch rejects with CodecError, in order, and the pool goes on", async () => {
  const cp = new CompressPool(1, 1);
  const dp = new DecompressPool(2);
  try {
    const good = await cp.compress(pages(2, 1), 2);
    const bad = [good[0], good[1].slice(0, good[1].length - 4)];
    const order: string[] = [];
    const note = (name: string) => (p: Promise<Uint8Array>) =>
      p.then(() => order.push(`${name} ok`), (e) => order.push(`${name} ${e.constructor.name}`));
    await Promise.all([
      note("a")(dp.decompress(good, 2)),
      note("b")(dp.decompress(bad, 2)),
      note("c")(dp.decompress([new Uint8Array(5000), good[0]], 2)),
      note("d")(dp.decompress(good, 2)),
    ]);
    assert.deepEqual(order, ["a ok", "b CodecError", "c CodecError", "d ok"]);
    const twoPages = zlib.compress(pages(2, 1), 1);
    await assert.rejects(dp.decompress([twoPages], 1), (e: unknown) => {
      assert.ok(e instanceof CodecError);
      assert.match(e.message, /inflates to more than 4096 bytes/);
      return true;
    }, "a stream inflates to exactly its page or fails");
    assert.deepEqual(await dp.decompress(good, 2), pages(2, 1));
  } finally {
    cp.close();
    dp.close();
  }
});

Deno.test("codec pools: close rejects what is pending and leaves no thread behind", async () => {
  const before = workerThreads();
  const cp = new CompressPool(3, 9, { maxBatch: 64 });
  const dp = new DecompressPool(2);
  // one job on every worker, so all five threads are surely running
  const one = await cp.compress(pages(1, 1), 1);
  await Promise.all([
    ...[1, 2, 3].map(() => cp.tryCompress(pages(1, 1), 1)),
    dp.decompress(one, 1),
    dp.decompress(one, 1),
  ]);
  const started = workerThreads();
  const pending = cp.compress(pages(64, 2, true), 64);
  const queued = [1, 2, 3, 4].map(() => cp.compress(pages(64, 3, true), 64));
  cp.close();
  dp.close();
  cp.close(); // idempotent
  for (const p of [pending, ...queued]) await assert.rejects(p, /codec pool closed/);
  assert.throws(() => cp.compress(pages(1, 1), 1), /codec pool closed/);
  assert.throws(() => cp.tryCompress(pages(1, 1), 1), /codec pool closed/);
  assert.throws(() => dp.decompress([new Uint8Array(10)], 1), /codec pool closed/);
  assert.equal(cp.idle, 0);
  if (before === null || started === null) return; // no /proc: the thread check needs Linux
  // the threads that appeared with the pools (tests running in parallel may add a few more)
  const ours = [...started].filter((t) => !before.has(t));
  assert.ok(ours.length >= 5, `only ${ours.length} new worker threads`);
  await waitFor(`five of the ${ours.length} new worker threads to end`, () => {
    const now = workerThreads()!;
    return ours.filter((t) => now.has(t)).length <= ours.length - 5;
  });
});
