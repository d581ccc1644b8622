/**
 * Issue 18 item 3, bounded peer input, one finding at a time (without sockets): page requests
 * a destination sends in precopy pile up nowhere and are capped in postcopy; an unsolicited
 * received bitmap is refused; a reader costs a small buffer until its stream shows it is one;
 * multifd channels must fit the setup (count and ids); the main stream's multifd barrier
 * gives up without progress and passes come in order; compressed pages in flight are capped.
 */
import assert from "node:assert/strict";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { zlib } from "../../domain/codecs/zlib.ts";
import { failureKind, LinkError } from "../../domain/engine/failure.ts";
import { Inflater, MAX_JOBS } from "../../domain/engine/inflater.ts";
import { MultifdReceiver } from "../../domain/engine/multifd_receiver.ts";
import { MultifdRegistry } from "../../domain/engine/multifd_dest.ts";
import { MAX_QUEUED_REQUESTS, SourceReturnPath } from "../../domain/engine/source_return_path.ts";
import { createStats } from "../../domain/engine/stats.ts";
import { RamLoader } from "../../domain/engine/ram_loader.ts";
import {
  encodeStreamHeader,
  FIRST_READER_BUFFER,
  FrameReader,
  FrameType,
  WireError,
} from "../../domain/wire/mod.ts";
import { encodeHello } from "../../domain/wire/multifd.ts";
import { encodeU32Frame } from "../../domain/wire/postcopy.ts";
import { encodeRpRecvBitmap, encodeRpReqPagesId } from "../../domain/wire/return_path.ts";
import { allocateGuest } from "../../adapters/memory/guest_ram.ts";
import { concat } from "../helpers/bytes.ts";

const LAYOUT = [{ name: "pc.ram", size: 1 << 20, firstPage: 0, pages: 256 }];
const until = async (what: string, f: () => boolean) => {
  const end = Date.now() + 10_000;
  while (!f()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 5));
  }
};

/** A source's return path reading `bytes` (then end of stream). */
function returnPath(bytes: Uint8Array, setup: (rp: SourceReturnPath) => void = () => {}) {
  const [a, b] = memoryChannelPair(1 << 20);
  const rp = new SourceReturnPath();
  setup(rp);
  let requests = 0;
  rp.read(b, LAYOUT, 4096, { onBitmap: () => {}, onRequest: () => requests++, wake: () => {} });
  (async () => {
    for (let off = 0; off < bytes.length;) off += await a.write(bytes.subarray(off));
    await a.closeWrite();
  })();
  return { rp, requests: () => requests, close: () => (a.close(), b.close()) };
}

function error(rp: SourceReturnPath): unknown {
  try {
    rp.check();
    return null;
  } catch (e) {
    return e;
  }
}

Deno.test("bounded input: page requests in precopy are counted and dropped; in postcopy at most 1024 wait", async () => {
  const many = concat(
    Array.from({ length: 5000 }, (_, i) => encodeRpReqPagesId((i % 256) * 4096, 4096, "pc.ram")),
  );
  const pre = returnPath(many);
  await until("the requests were read", () => error(pre.rp) !== null || pre.requests() === 5000);
  assert.equal(pre.requests(), 5000, "every request counted (postcopy-requests)");
  assert.equal(pre.rp.requests.length, 0, "none kept: precopy sends every page anyway");
  pre.close();
  const post = returnPath(many, (rp) => (rp.postcopy = true));
  await until("the return path failed", () => error(post.rp) !== null);
  const e = error(post.rp);
  assert.ok(e instanceof WireError && failureKind(e) === "protocol", String(e));
  assert.equal(e.message, `RP: more than ${MAX_QUEUED_REQUESTS} page requests waiting`);
  assert.equal(post.rp.requests.length, MAX_QUEUED_REQUESTS);
  post.close();
});

Deno.test("bounded input: a received bitmap nobody asked for is refused", async () => {
  const bits = new Uint8Array(32).fill(0xff);
  const size = (n: bigint) => {
    const b = new Uint8Array(8);
    new DataView(b.buffer).setBigUint64(0, n);
    return b;
  };
  const msg = concat([
    encodeRpRecvBitmap("pc.ram"),
    size(32n),
    bits,
    size(0x0123456789abcdefn),
  ]);
  const r = returnPath(msg);
  await until("the return path failed", () => error(r.rp) !== null);
  assert.match(String(error(r.rp)), /received bitmap outside a recovery/);
  r.close();
  const ok = returnPath(msg, (rp) => (rp.recovering = true));
  await until("the bitmap arrived", () => ok.rp.bitmapsIn === 1);
  ok.close();
});

Deno.test("bounded input: a reader holds a small buffer until its stream shows it is one", async () => {
  const [a, b] = memoryChannelPair(1 << 20);
  const reader = new FrameReader(b);
  await a.write(encodeStreamHeader("multifd"));
  assert.equal(await reader.readStreamHeader(null), "multifd");
  assert.equal(reader.bufferSize, FIRST_READER_BUFFER, "a connection that says little");
  const ping = encodeU32Frame(FrameType.PING, 1);
  const pings = concat(Array.from({ length: 1000 }, () => ping));
  const writing = a.write(pings);
  for (let i = 0; i < 1000; i++) {
    assert.equal((await reader.next()).type, FrameType.PING);
    await reader.readPayload();
  }
  await writing;
  assert.equal(reader.bufferSize, 1 << 20, "a stream that talks gets the whole buffer");
  a.close();
  b.close();
});

Deno.test("bounded input: multifd channels must fit the setup (channel count, ids 0 .. n-1)", async () => {
  const registry = new MultifdRegistry();
  const uuid = crypto.getRandomValues(new Uint8Array(16));
  const closed: number[] = [];
  const offer = (id: number, channels: number) => {
    const [, b] = memoryChannelPair(1024);
    const ch = { ...b, close: () => (closed.push(id), b.close()) } as typeof b;
    return registry.offer({ uuid, id, channels }, ch, new FrameReader(ch));
  };
  // Four channels announcing a count of 4, while the setup says 2: none is this migration's.
  for (let id = 0; id < 4; id++) assert.equal(offer(id, 4), true);
  await assert.rejects(
    registry.claim(uuid, 2, 200),
    (e: unknown) => e instanceof WireError && /only 0 of 2 channels connected/.test(e.message),
  );
  assert.deepEqual(closed.sort(), [0, 1, 2, 3], "the misfits are closed");
  // The right ones: ids 0 and 1 of 2.
  const claim = registry.claim(uuid, 2, 5000);
  offer(1, 2);
  offer(0, 2);
  assert.deepEqual((await claim).map((c) => c.id), [0, 1]);
  registry.close();
});

Deno.test("bounded input: the main stream's multifd barrier gives up without progress; passes come in order", async () => {
  const guest = allocateGuest([{ name: "pc.ram", size: 1 << 20 }], { snapshot: false });
  const ram = new RamLoader(guest, createStats());
  const pairs = [memoryChannelPair(1 << 16), memoryChannelPair(1 << 16)];
  const readers = pairs.map(([, b]) => new FrameReader(b));
  for (const [a] of pairs) await a.write(encodeStreamHeader("multifd"));
  for (const r of readers) await r.readStreamHeader("multifd");
  const rx = new MultifdReceiver(
    pairs.map(([, b], id) => ({ id, channel: b, reader: readers[id] })),
    ram,
    createStats(),
    () => {},
  );
  // Channel 0 reaches pass 1, channel 1 says nothing.
  await pairs[0][0].write(encodeU32Frame(FrameType.MULTIFD_SYNC, 1));
  await assert.rejects(
    rx.mainSync(1, 300),
    (e: unknown) =>
      e instanceof LinkError && /channel 1 did not reach pass 1/.test(e.message) &&
      failureKind(e) === "link",
  );
  await assert.rejects(
    rx.mainSync(5, 300),
    (e: unknown) => e instanceof WireError && /sync for pass 5 after pass 1/.test(e.message),
  );
  rx.close();
  for (const [a, b] of pairs) (a.close(), b.close());
  // A channel's own passes must come in order too.
  const [a, b] = memoryChannelPair(1 << 16);
  const r = new FrameReader(b);
  await a.write(concat([encodeStreamHeader("multifd"), encodeU32Frame(FrameType.MULTIFD_SYNC, 7)]));
  await r.readStreamHeader("multifd");
  let failed: unknown = null;
  const one = new MultifdReceiver([{ id: 0, channel: b, reader: r }], ram, createStats(), () => {});
  await assert.rejects(one.mainSync(1, 2000), (e: unknown) => (failed = e) instanceof WireError);
  assert.match(String(failed), /multifd channel 0: sync for pass 7 after pass 0/);
  one.close();
  a.close();
});

Deno.test("bounded input: compressed pages in flight are capped; the oldest are placed first", async () => {
  const page = new Uint8Array(4096).fill(7);
  const stream = zlib.compress(page, 1);
  const placed: number[] = [];
  const inflater = new Inflater(2, (_b, p) => placed.push(p));
  try {
    let total = 0;
    for (let i = 0; i < 64 * (MAX_JOBS + 12); i++) {
      total += await inflater.add(0, i % 256, stream);
      assert.ok(inflater.jobs <= MAX_JOBS, `${inflater.jobs} batches in flight`);
    }
    assert.ok(total >= 64 * 12, `pages placed on the way: ${total}`);
    total += await inflater.drain();
    assert.equal(total, 64 * (MAX_JOBS + 12));
    assert.deepEqual(placed, Array.from({ length: total }, (_, i) => i % 256), "in order");
  } finally {
    inflater.close();
  }
});

Deno.test("bounded input: a HELLO for another migration's count is refused at once while one is expected", async () => {
  const registry = new MultifdRegistry();
  const uuid = crypto.getRandomValues(new Uint8Array(16));
  const claim = registry.claim(uuid, 1, 2000);
  const [, b] = memoryChannelPair(1024);
  assert.equal(registry.offer({ uuid, id: 0, channels: 3 }, b, new FrameReader(b)), false);
  const [, c] = memoryChannelPair(1024);
  assert.equal(registry.offer({ uuid, id: 0, channels: 1 }, c, new FrameReader(c)), true);
  assert.equal((await claim).length, 1);
  registry.close();
  assert.ok(encodeHello({ uuid, id: 0, channels: 1 }).length > 0);
});
