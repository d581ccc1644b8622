import assert from "node:assert/strict";
import fc from "fast-check";
import { countMarked, syncDirtyLog } from "../../adapters/memory/dirty_log.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

/** The naive model: byte by byte. */
function modelSync(dirty: Uint8Array, into: Uint8Array): number {
  let n = 0;
  for (let p = 0; p < dirty.length; p++) {
    if (dirty[p] !== 0) {
      into[p] = 1;
      dirty[p] = 0;
      n++;
    }
  }
  return n;
}

const mapArb = fc.integer({ min: 0, max: 300 }).chain((len) =>
  fc.record({
    dirty: fc.uint8Array({ minLength: len, maxLength: len }).chain((bytes) =>
      // Mostly zero, with runs of marks, like a real dirty log.
      fc.array(fc.nat(len), { maxLength: 40 }).map((marks) => {
        const d = new Uint8Array(len);
        for (const m of marks) if (m < len) d[m] = bytes[m] | 1;
        return d;
      })
    ),
    into: fc.uint8Array({ minLength: len, maxLength: len }).map((b) => b.map((x) => x & 1)),
    offset: fc.constantFrom(0, 1, 4, 8),
  })
);

Deno.test("syncDirtyLog equals the naive model, on aligned and unaligned views (property)", () => {
  fc.assert(
    fc.property(mapArb, ({ dirty, into, offset }) => {
      // Place the map at an offset into a bigger shared buffer to exercise unaligned views.
      const backing = new Uint8Array(new SharedArrayBuffer(dirty.length + offset + 8));
      const view = backing.subarray(offset, offset + dirty.length);
      view.set(dirty);
      const target = into.slice();
      const modelDirty = dirty.slice();
      const modelInto = into.slice();
      const expected = modelSync(modelDirty, modelInto);
      assert.equal(syncDirtyLog(view, target), expected);
      assert.deepEqual(view, modelDirty);
      assert.deepEqual(target, modelInto);
      assert.equal(countMarked(view), 0);
      // Bytes outside the view are untouched.
      assert.equal(countMarked(backing), 0);
    }),
    { seed, numRuns: 500 },
  );
});

Deno.test("countMarked equals a byte count (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 200 }), fc.constantFrom(0, 3), (bytes, offset) => {
      const backing = new Uint8Array(bytes.length + offset);
      backing.set(bytes, offset);
      const want = bytes.reduce((n, b) => n + (b !== 0 ? 1 : 0), 0);
      assert.equal(countMarked(backing.subarray(offset)), want);
    }),
    { seed },
  );
});

Deno.test("syncDirtyLog: every page of a fully dirty map, in place; then clean", () => {
  const pages = 262144 + 24;
  const dirty = new Uint8Array(new SharedArrayBuffer(pages)).fill(1);
  const into = new Uint8Array(pages);
  assert.equal(syncDirtyLog(dirty, into), pages);
  assert.equal(countMarked(into), pages);
  assert.equal(syncDirtyLog(dirty, into), 0);
  dirty[5] = 1, dirty[262150] = 1, dirty[pages - 1] = 7;
  const again = new Uint8Array(pages);
  assert.equal(syncDirtyLog(dirty, again), 3);
  assert.deepEqual([again[5], again[262150], again[pages - 1], countMarked(again)], [1, 1, 1, 3]);
});

Deno.test("syncDirtyLog: a target map shorter than the log is refused", () => {
  assert.throws(() => syncDirtyLog(new Uint8Array(16), new Uint8Array(8)), /too small/);
});
