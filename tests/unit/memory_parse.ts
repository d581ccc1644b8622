import assert from "node:assert/strict";
import fc from "fast-check";
import { parseSize } from "../../adapters/memory/guest_ram.ts";
import { layoutBlocks, validateBlockSpecs } from "../../adapters/memory/layout.ts";
import { parseWorkload, resolveWorkload } from "../../adapters/memory/workload_spec.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

Deno.test("parseSize: plain bytes and binary suffixes in any case", () => {
  assert.equal(parseSize("4096"), 4096);
  assert.equal(parseSize("64k"), 65536);
  assert.equal(parseSize("64K"), 65536);
  assert.equal(parseSize("128M"), 128 << 20);
  assert.equal(parseSize("1G"), 1 << 30);
  assert.equal(parseSize("1g"), 1 << 30);
  assert.equal(parseSize("1.5G"), 1.5 * 2 ** 30);
  assert.equal(parseSize("2T"), 2 * 2 ** 40);
  assert.equal(parseSize("10b"), 10);
  assert.equal(parseSize(" 8M "), 8 << 20);
  assert.equal(parseSize("0"), 0);
});

Deno.test("parseSize: junk, fractions of a byte and huge sizes throw", () => {
  for (const bad of ["", "M", "12Q", "-1", "1e3", "1,5G", "0x10", "1.5", "1 2", "64kb", "16E"]) {
    assert.throws(() => parseSize(bad), RangeError, bad);
  }
  assert.throws(() => parseSize("12Q"), /invalid size '12Q'/);
});

Deno.test("parseSize: N followed by each suffix is N * 1024^k (property)", () => {
  fc.assert(
    fc.property(fc.integer({ min: 0, max: 1 << 20 }), fc.integer({ min: 0, max: 3 }), (n, k) => {
      assert.equal(parseSize(`${n}${"BKMG"[k]}`), n * 1024 ** k);
    }),
    { seed },
  );
});

Deno.test("parseWorkload: the three kinds with and without options", () => {
  assert.deepEqual(parseWorkload("idle"), { kind: "idle" });
  assert.deepEqual(parseWorkload("increment"), { kind: "increment" });
  assert.deepEqual(parseWorkload("increment,start=1M,end=100M"), {
    kind: "increment",
    start: 1 << 20,
    end: 100 << 20,
  });
  assert.deepEqual(parseWorkload("increment,end=8M"), { kind: "increment", end: 8 << 20 });
  assert.deepEqual(parseWorkload("random"), { kind: "random", rate: 10000, hot: 1 });
  assert.deepEqual(parseWorkload("random,rate=5000,hot=0.1"), {
    kind: "random",
    rate: 5000,
    hot: 0.1,
  });
  assert.deepEqual(parseWorkload("random,hot=0.5"), { kind: "random", rate: 10000, hot: 0.5 });
  assert.deepEqual(parseWorkload("random,rate=100,clock=on"), {
    kind: "random",
    rate: 100,
    hot: 1,
    clock: true,
  });
  assert.deepEqual(parseWorkload("random,clock=off"), { kind: "random", rate: 10000, hot: 1 });
  assert.deepEqual(parseWorkload("increment,end=8M,rate=250000"), {
    kind: "increment",
    end: 8 << 20,
    rate: 250000,
  });
});

Deno.test("parseWorkload: clear errors", () => {
  const cases: [string, RegExp][] = [
    ["busy", /unknown kind 'busy'/],
    ["", /unknown kind ''/],
    ["idle,rate=5", /'idle' takes no option 'rate'/],
    ["increment,rate=0", /rate=0 is invalid/],
    ["increment,hot=0.5", /'increment' takes no option 'hot'/],
    ["increment,start", /'start' is not KEY=VALUE/],
    ["increment,start=1M,start=2M", /'start' given twice/],
    ["increment,start=100M,end=1M", /start=100M must be below end=1M/],
    ["increment,start=1000", /start=1000 is not a multiple of the page size 4096/],
    ["increment,end=junk", /invalid size 'junk'/],
    ["random,rate=0", /rate=0 is invalid/],
    ["random,rate=fast", /rate=fast is invalid/],
    ["random,rate=1e10", /rate=1e10 is invalid/],
    ["random,hot=0", /hot=0 is invalid, expected a fraction in \(0, 1\]/],
    ["random,hot=1.5", /hot=1.5 is invalid/],
    ["random,hot=", /hot= is invalid/],
    ["random,clock=yes", /clock=yes is invalid, expected on or off/],
    ["increment,clock=on", /'increment' takes no option 'clock'/],
  ];
  for (const [input, message] of cases) assert.throws(() => parseWorkload(input), message, input);
});

Deno.test("resolveWorkload: increment defaults clamp to the RAM, explicit bounds are checked", () => {
  const prng = [1, 2, 3, 4];
  const r = resolveWorkload({ kind: "increment" }, 256 << 20, prng);
  assert.deepEqual([r.start, r.end, r.cursor, r.booted], [1 << 20, 100 << 20, 1 << 20, false]);
  const small = resolveWorkload({ kind: "increment" }, 16 << 20, prng);
  assert.deepEqual([small.start, small.end], [1 << 20, 16 << 20]);
  const tiny = resolveWorkload({ kind: "increment" }, 64 << 10, prng);
  assert.deepEqual([tiny.start, tiny.end], [0, 64 << 10]);
  assert.throws(
    () => resolveWorkload({ kind: "increment", end: 100 << 20 }, 64 << 20, prng),
    /workload: increment range 0x100000..0x6400000 outside RAM of 67108864 bytes/,
  );
  assert.throws(
    () => resolveWorkload({ kind: "increment", start: 64 << 20 }, 64 << 20, prng),
    /outside RAM/,
  );
  const rnd = resolveWorkload({ kind: "random", rate: 5, hot: 0.5 }, 1 << 20, [0, 0, 0, 0]);
  assert.deepEqual([rnd.rate, rnd.hot, rnd.start, rnd.end, rnd.cursor], [5, 0.5, 0, 0, 0]);
  assert.ok(rnd.prng.some((w) => w !== 0), "an all-zero seed is replaced");
});

Deno.test("layout: blocks placed one after another; bad specs rejected", () => {
  const layout = layoutBlocks([{ name: "pc.ram", size: 8192 }, { name: "vga", size: 4096 }]);
  assert.deepEqual(layout.map((b) => [b.firstPage, b.pages]), [[0, 2], [2, 1]]);
  assert.throws(() => validateBlockSpecs([]), /at least one RAM block/);
  assert.throws(
    () => validateBlockSpecs([{ name: "a", size: 4096 }, { name: "a", size: 4096 }]),
    /duplicate/,
  );
  assert.throws(
    () => validateBlockSpecs([{ name: "a", size: 4097 }]),
    /not a positive multiple of 4096/,
  );
  assert.throws(() => validateBlockSpecs([{ name: "a", size: 0 }]), /not a positive multiple/);
  assert.throws(() => validateBlockSpecs([{ name: "", size: 4096 }]), /needs a name/);
});
