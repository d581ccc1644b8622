/**
 * The destination's RAM side (RamLoader) without sockets: frames written into an in-memory
 * channel, read back with a FrameReader and placed in a small real guest. Precopy places
 * whole runs and counts what never came; a zero run clears only pages stored to; postcopy
 * never writes over a page the guest already has; discards and XBZRLE deltas are refused
 * where the stream has no right to send them. A property test checks the RAM and the
 * `unseen` count against a model for random sequences of runs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { allocateGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { RamLoader } from "../../domain/engine/ram_loader.ts";
import { createStats, STAT } from "../../domain/engine/stats.ts";
import {
  encodePageRun,
  encodeStreamHeader,
  encodeZeroRun,
  FrameReader,
  FrameType,
  WireError,
} from "../../domain/wire/mod.ts";
import { encodeDiscard } from "../../domain/wire/postcopy.ts";
import { ENCODED_PAGE_OVERHEAD, putEncodedPageHeader } from "../../domain/wire/encoded_page.ts";
import { xbzrle } from "../../domain/codecs/xbzrle.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const BLOCKS = [{ name: "pc.ram", size: 32 * PAGE_SIZE }, {
  name: "vga.vram",
  size: 8 * PAGE_SIZE,
}];

/** Pages filled with `value` (one byte repeated). */
function pages(count: number, value: number): Uint8Array {
  return new Uint8Array(count * PAGE_SIZE).fill(value);
}

/** An XBZRLE_PAGE frame turning page `old` into `cur`. */
function xbzrleFrame(block: number, page: number, old: Uint8Array, cur: Uint8Array): Uint8Array {
  const out = new Uint8Array(PAGE_SIZE);
  const n = xbzrle.encode(old, cur, out);
  const f = new Uint8Array(ENCODED_PAGE_OVERHEAD + n);
  const off = putEncodedPageHeader(
    new DataView(f.buffer),
    0,
    FrameType.XBZRLE_PAGE,
    block,
    page,
    n,
  );
  f.set(out.subarray(0, n), off);
  return f;
}

/** A loader over a fresh guest, and a function that feeds it frames. */
function setup() {
  const guest = allocateGuest(BLOCKS);
  const stats = createStats();
  const loader = new RamLoader(guest, stats);
  const ram = guest.ram.map((b) => new Uint8Array(b));
  /** Writes the frames into a channel and places each one with the loader. */
  async function feed(...frames: Uint8Array[]): Promise<void> {
    const [a, b] = memoryChannelPair(1 << 20);
    const reader = new FrameReader(b);
    const header = new Uint8Array(10);
    const writing = (async () => {
      await a.write(encodeStreamHeader());
      for (const f of frames) await a.write(f);
      await a.closeWrite();
    })();
    await reader.readStreamHeader();
    for (let i = 0; i < frames.length; i++) {
      const f = await reader.next();
      if (f.type === FrameType.PAGE_RUN) await loader.pageRun(reader, f.length, header);
      else if (f.type === FrameType.ZERO_RUN) loader.zeroRun(await reader.readPayload());
      else if (f.type === FrameType.XBZRLE_PAGE) loader.xbzrlePage(await reader.readPayload());
      else if (f.type === FrameType.POSTCOPY_DISCARD) loader.discard(await reader.readPayload());
      else throw new Error(`test fed frame type ${f.type}`);
    }
    await writing;
    a.close();
    b.close();
  }
  return { guest, stats, loader, ram, feed };
}

Deno.test("ram loader: precopy runs land in place; unseen counts what never came", async () => {
  const { stats, loader, ram, feed } = setup();
  assert.equal(loader.totalPages, 40);
  assert.equal(loader.unseen(), 40);
  await feed(
    encodePageRun(0, 4, PAGE_SIZE, pages(3, 7)),
    encodePageRun(1, 0, PAGE_SIZE, pages(1, 9)),
  );
  assert.deepEqual([ram[0][3 * PAGE_SIZE], ram[0][4 * PAGE_SIZE], ram[0][7 * PAGE_SIZE - 1]], [
    0,
    7,
    7,
  ]);
  assert.equal(ram[0][7 * PAGE_SIZE], 0);
  assert.equal(ram[1][PAGE_SIZE - 1], 9);
  assert.equal(stats[STAT.normal], 4);
  assert.equal(loader.unseen(), 36);
  // The same pages again (a later pass) are not counted twice as seen.
  await feed(encodePageRun(0, 4, PAGE_SIZE, pages(3, 8)));
  assert.equal(ram[0][5 * PAGE_SIZE], 8);
  assert.equal(loader.unseen(), 36);
});

Deno.test("ram loader: a zero run clears pages stored to, and counts every page it names", async () => {
  const { stats, loader, ram, feed } = setup();
  await feed(encodePageRun(0, 0, PAGE_SIZE, pages(2, 5)), encodeZeroRun(0, 1, 4));
  assert.equal(ram[0][0], 5, "page 0 was not in the zero run");
  assert.ok(ram[0].subarray(PAGE_SIZE, 5 * PAGE_SIZE).every((v) => v === 0));
  assert.equal(stats[STAT.duplicate], 4);
  assert.equal(loader.unseen(), 40 - 5);
  assert.equal(loader.missing(), 40, "precopy without advise marks nothing received");
});

Deno.test("ram loader: in postcopy a page the guest already has is never overwritten", async () => {
  const { loader, ram, feed } = setup();
  loader.advised = true;
  await feed(encodePageRun(0, 0, PAGE_SIZE, pages(2, 1)));
  assert.ok(loader.isReceived(0) && loader.isReceived(1));
  loader.postcopy = true;
  ram[0][0] = 42; // the running guest wrote to its page 0
  await feed(encodePageRun(0, 0, PAGE_SIZE, pages(3, 2)), encodeZeroRun(0, 0, 1));
  assert.equal(ram[0][0], 42, "page 0 (received) kept the guest's write");
  assert.equal(ram[0][PAGE_SIZE], 1, "page 1 (received) kept its first copy");
  assert.equal(ram[0][2 * PAGE_SIZE], 2, "page 2 (missing) was placed");
  assert.equal(loader.missing(), 40 - 3);
});

Deno.test("ram loader: placement goes straight to RAM, then postcopy's; a single page only before", async () => {
  const { loader, ram, feed } = setup();
  assert.equal(loader.placement, "ram");
  loader.advised = true;
  loader.wholePage(0, 5, pages(1, 7));
  assert.equal(ram[0][5 * PAGE_SIZE], 7, "an inflated page lands in RAM");
  assert.ok(loader.isReceived(5), "under advise it is received for the vCPU");
  loader.place("postcopy");
  assert.equal(loader.placement, "postcopy");
  assert.equal(loader.postcopy, true);
  assert.throws(() => loader.wholePage(0, 6, pages(1, 8)), /single encoded page in postcopy/);
  assert.equal(ram[0][6 * PAGE_SIZE], 0, "nothing was placed");
  await feed(encodePageRun(0, 5, PAGE_SIZE, pages(2, 9)));
  assert.equal(ram[0][5 * PAGE_SIZE], 7, "a received page is kept");
  assert.equal(ram[0][6 * PAGE_SIZE], 9, "a missing page is placed whole");
  assert.ok(loader.isReceived(6));
});

Deno.test("ram loader: discards only under advise and before listen; they un-receive pages", async () => {
  const { loader, feed } = setup();
  const discard = encodeDiscard(0, [{ first: 1, count: 2 }])[0];
  await assert.rejects(feed(discard), WireError);
  loader.advised = true;
  await feed(encodePageRun(0, 0, PAGE_SIZE, pages(4, 1)));
  assert.equal(loader.missing(), 36);
  await feed(discard);
  assert.equal(loader.missing(), 38);
  assert.ok(!loader.isReceived(1) && !loader.isReceived(2) && loader.isReceived(3));
  await assert.rejects(feed(encodeDiscard(0, [{ first: 30, count: 4 }])[0]), WireError);
  loader.postcopy = true;
  await assert.rejects(feed(discard), WireError);
});

Deno.test("ram loader: an XBZRLE delta applies to a page held, and is refused for others", async () => {
  const { stats, loader, ram, feed } = setup();
  const cur = pages(1, 0);
  cur.fill(0xab, 100, 164);
  const delta = xbzrleFrame(0, 3, pages(1, 0), cur);
  await assert.rejects(feed(delta), /does not hold/);
  await feed(encodePageRun(0, 3, PAGE_SIZE, pages(1, 0)));
  await feed(delta);
  assert.deepEqual(ram[0].subarray(3 * PAGE_SIZE, 4 * PAGE_SIZE), cur);
  assert.equal(stats[STAT.xbzrlePages], 1);
  loader.postcopy = true;
  await assert.rejects(feed(delta), /does not hold/);
});

Deno.test("ram loader: random runs give the model's RAM and unseen count (property)", async () => {
  const run = fc.record({
    block: fc.integer({ min: 0, max: 1 }),
    first: fc.nat({ max: 31 }),
    count: fc.integer({ min: 1, max: 8 }),
    value: fc.integer({ min: 0, max: 255 }),
    zero: fc.boolean(),
  });
  await fc.assert(
    fc.asyncProperty(fc.array(run, { maxLength: 12 }), async (runs) => {
      const { loader, ram, feed, guest } = setup();
      const model = guest.layout.map((b) => new Uint8Array(b.pages));
      const seen = new Set<string>();
      const frames: Uint8Array[] = [];
      for (const r of runs) {
        const pagesIn = guest.layout[r.block].pages;
        const first = r.first % pagesIn;
        const count = Math.min(r.count, pagesIn - first);
        frames.push(
          r.zero
            ? encodeZeroRun(r.block, first, count)
            : encodePageRun(r.block, first, PAGE_SIZE, pages(count, r.value)),
        );
        for (let p = first; p < first + count; p++) {
          model[r.block][p] = r.zero ? 0 : r.value;
          seen.add(`${r.block}:${p}`);
        }
      }
      await feed(...frames);
      for (let b = 0; b < model.length; b++) {
        for (let p = 0; p < model[b].length; p++) {
          assert.equal(ram[b][p * PAGE_SIZE], model[b][p], `block ${b} page ${p} first byte`);
          assert.equal(
            ram[b][(p + 1) * PAGE_SIZE - 1],
            model[b][p],
            `block ${b} page ${p} last byte`,
          );
        }
      }
      assert.equal(loader.unseen(), loader.totalPages - seen.size);
    }),
    { seed, numRuns: 200 },
  );
});

Deno.test("ram loader, cache placement (COLO): a checkpoint's pages reach RAM only when committed", async () => {
  const { loader, ram, feed } = setup();
  // The guest's state when the checkpointing starts: page 5 holds 3s, block 1 page 2 holds 1s.
  ram[0].fill(3, 5 * PAGE_SIZE, 6 * PAGE_SIZE);
  await feed(encodePageRun(1, 2, PAGE_SIZE, pages(1, 1)));
  loader.place("cache");
  assert.equal(loader.placement, "cache");
  const before = ram.map((r) => r.slice());
  const changed = pages(1, 1).fill(9, 100, 200);
  await feed(
    encodePageRun(0, 0, PAGE_SIZE, pages(2, 7)),
    encodeZeroRun(0, 5, 1),
    xbzrleFrame(1, 2, pages(1, 1), changed), // a delta against the cached page
  );
  assert.deepEqual(ram, before, "RAM untouched while the checkpoint arrives");
  assert.equal(loader.commitCache(), 4, "pages 0, 1, 5 and block 1 page 2");
  assert.deepEqual(
    [ram[0][0], ram[0][2 * PAGE_SIZE - 1], ram[0][2 * PAGE_SIZE], ram[0][5 * PAGE_SIZE]],
    [7, 7, 0, 0],
  );
  assert.deepEqual(ram[1].subarray(2 * PAGE_SIZE, 3 * PAGE_SIZE), changed);
  // The guest runs on and writes RAM; the next checkpoint copies only what it carried.
  ram[0].fill(4, 10 * PAGE_SIZE, 11 * PAGE_SIZE);
  await feed(encodePageRun(0, 1, PAGE_SIZE, pages(1, 6)));
  assert.equal(loader.commitCache(), 1);
  assert.equal(ram[0][PAGE_SIZE], 6);
  assert.equal(ram[0][10 * PAGE_SIZE], 4, "a page no checkpoint carried keeps the guest's bytes");
  assert.equal(loader.commitCache(), 0, "nothing new");
  loader.place("ram");
  assert.throws(() => loader.commitCache(), /no checkpoint cache/);
});
