import assert from "node:assert/strict";
import fc from "fast-check";
import { CACHED_PAGE_LIFETIME, PageCache } from "../../domain/codecs/page_cache.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
const PS = 64; // small pages keep the model test fast; the cache takes any power of two

function pageOf(tag: number, ps = PS): Uint8Array {
  const p = new Uint8Array(ps);
  for (let i = 0; i < ps; i++) p[i] = (tag * 31 + i) & 0xff;
  return p;
}

Deno.test("page cache: sizes must be powers of two of at least one page", () => {
  for (const bad of [0, 2048, 4097, 12288, 1.5 * 4096, -4096, NaN, 2 ** 60 + 1]) {
    assert.throws(() => new PageCache(bad), RangeError, `size ${bad}`);
  }
  assert.throws(() => new PageCache(4096, 3000), RangeError);
  const c = new PageCache(4096);
  assert.equal(c.slots, 1);
  assert.equal(new PageCache(64 << 20).slots, 16384);
  assert.throws(() => c.resize(6000), RangeError);
  assert.equal(c.size, 4096);
  assert.throws(() => c.lookup(-1), RangeError);
  assert.throws(() => c.insert(0, new Uint8Array(100), 0), RangeError);
});

Deno.test("page cache: lookup, copies, hits and misses, generations", () => {
  const c = new PageCache(4 * PS, PS); // 4 slots
  assert.equal(c.lookup(1), null);
  const data = pageOf(1);
  assert.equal(c.insert(1, data, 0), true);
  data.fill(0); // the cache holds a copy
  assert.deepEqual(c.lookup(1), pageOf(1));
  assert.equal(c.has(5), false);
  // page 5 maps to page 1's slot, which was used in generation 0: kept until gen 0 + 2
  assert.equal(c.insert(5, pageOf(5), 1), false);
  assert.equal(c.insert(5, pageOf(5), CACHED_PAGE_LIFETIME - 1), false);
  assert.equal(c.lookup(1, 1)?.[0], pageOf(1)[0], "a hit with gen 1 refreshes the age");
  assert.equal(c.insert(5, pageOf(5), 2), false);
  assert.equal(c.insert(5, pageOf(5), 3), true);
  assert.equal(c.has(1), false);
  assert.deepEqual(c.lookup(5), pageOf(5));
  // the same page is always overwritten (the copy sent last)
  assert.equal(c.insert(5, pageOf(9), 3), true);
  assert.deepEqual(c.lookup(5), pageOf(9));
  assert.equal(c.hits, 4);
  assert.equal(c.misses, 1);
  assert.equal(c.count, 1);
  // a lookup view writes through (the engine refreshes the copy in place after a send)
  c.lookup(5)!.set(pageOf(11));
  assert.deepEqual(c.lookup(5), pageOf(11));
});

Deno.test("page cache: resize keeps what fits, most recently used first", () => {
  const c = new PageCache(8 * PS, PS);
  for (let p = 0; p < 8; p++) c.insert(p, pageOf(p), p);
  c.resize(16 * PS);
  assert.equal(c.slots, 16);
  for (let p = 0; p < 8; p++) assert.deepEqual(c.lookup(p), pageOf(p));
  c.resize(2 * PS); // pages 0,2,4,6 -> slot 0 (6 newest); 1,3,5,7 -> slot 1 (7 newest)
  assert.equal(c.count, 2);
  assert.deepEqual(c.lookup(6), pageOf(6));
  assert.deepEqual(c.lookup(7), pageOf(7));
  assert.equal(c.lookup(4), null);
  c.resize(2 * PS); // same size: nothing changes
  assert.equal(c.count, 2);
});

type Op =
  | { op: "insert"; page: number; gen: number; tag: number }
  | { op: "lookup"; page: number; gen: number | undefined }
  | { op: "resize"; slotsLog2: number };

/** The cache's rules on a plain Map from slot to entry (the spec, written the slow way). */
class Model {
  slots: number;
  map = new Map<number, { page: number; age: number; tag: number }>();
  constructor(slots: number) {
    this.slots = slots;
  }
  insert(page: number, gen: number, tag: number): boolean {
    const e = this.map.get(page % this.slots);
    if (e && e.page !== page && e.age + CACHED_PAGE_LIFETIME > gen) return false;
    this.map.set(page % this.slots, { page, age: gen, tag });
    return true;
  }
  lookup(page: number, gen: number | undefined): number | null {
    const e = this.map.get(page % this.slots);
    if (!e || e.page !== page) return null;
    if (gen !== undefined) e.age = gen;
    return e.tag;
  }
  resize(slots: number): void {
    const old = [...this.map.entries()].sort((a, b) => a[0] - b[0]).map(([, e]) => e); // slot order
    this.slots = slots;
    this.map = new Map();
    for (const e of old) {
      const held = this.map.get(e.page % slots);
      if (!held || held.age < e.age) this.map.set(e.page % slots, { ...e });
    }
  }
}

Deno.test("page cache: behaves like the model under random operations", () => {
  const op: fc.Arbitrary<Op> = fc.oneof(
    fc.record({
      op: fc.constant("insert" as const),
      page: fc.nat(40),
      gen: fc.nat(12),
      tag: fc.nat(255),
    }),
    fc.record({
      op: fc.constant("lookup" as const),
      page: fc.nat(40),
      gen: fc.option(fc.nat(12), { nil: undefined }),
    }),
    fc.record({ op: fc.constant("resize" as const), slotsLog2: fc.nat(4) }),
  );
  fc.assert(
    fc.property(fc.nat(4), fc.array(op, { maxLength: 80 }), (log2, ops) => {
      const cache = new PageCache(PS << log2, PS);
      const model = new Model(1 << log2);
      let hits = 0;
      let misses = 0;
      for (const o of ops) {
        if (o.op === "insert") {
          assert.equal(
            cache.insert(o.page, pageOf(o.tag), o.gen),
            model.insert(o.page, o.gen, o.tag),
          );
        } else if (o.op === "lookup") {
          const want = model.lookup(o.page, o.gen);
          const got = cache.lookup(o.page, o.gen);
          if (want === null) {
            misses++;
            assert.equal(got, null);
          } else {
            hits++;
            assert.deepEqual(got, pageOf(want));
          }
        } else {
          cache.resize(PS << o.slotsLog2);
          model.resize(1 << o.slotsLog2);
        }
        assert.equal(cache.count, model.map.size);
      }
      assert.equal(cache.hits, hits);
      assert.equal(cache.misses, misses);
    }),
    { seed, numRuns: 300 },
  );
});
