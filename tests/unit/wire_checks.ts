import assert from "node:assert/strict";
import fc from "fast-check";
import { layoutBlocks, PAGE_SIZE } from "../../adapters/memory/layout.ts";
import {
  checkConfig,
  checkRun,
  checkSectionEnd,
  checkSectionStart,
  decodeConfig,
  decodeZeroRun,
  encodeConfig,
  encodeZeroRun,
  FRAME_HEADER_SIZE,
  SectionKind,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

function throwsWire(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

const layout = layoutBlocks([
  { name: "pc.ram", size: 1024 * PAGE_SIZE },
  { name: "vga.vram", size: 4 * PAGE_SIZE },
]);

Deno.test("checkRun accepts runs inside a block and rejects everything else", () => {
  checkRun(layout, 0, 0, 1024);
  checkRun(layout, 0, 1023, 1);
  checkRun(layout, 1, 3, 1);
  throwsWire(() => checkRun(layout, 2, 0, 1), "RAM block index 2 out of range (2 blocks)");
  throwsWire(() => checkRun(layout, 0xffff, 0, 1), /index 65535 out of range/);
  throwsWire(() => checkRun(layout, 0, 0, 0), "run with a page count of 0");
  throwsWire(
    () => checkRun(layout, 0, 1020, 5),
    "run of 5 pages at page 1020 goes past the end of RAM block 'pc.ram' (1024 pages)",
  );
  throwsWire(() => checkRun(layout, 1, 4, 1), /past the end of RAM block 'vga.vram'/);
  // firstPage + count would wrap to 1 in u32 arithmetic; it must still be refused.
  const wrap = decodeZeroRun(encodeZeroRun(0, 0xffffffff, 2).subarray(FRAME_HEADER_SIZE));
  throwsWire(() => checkRun(layout, wrap.block, wrap.firstPage, wrap.count), /past the end/);
  throwsWire(() => checkRun(layout, 0, 0xffffffff, 0xffffffff), /past the end/);
});

Deno.test("checkRun agrees with a reference model for every u16/u32 input", () => {
  fc.assert(
    fc.property(
      fc.nat({ max: 3 }),
      fc.oneof(fc.nat({ max: 1100 }), fc.nat({ max: 0xffffffff })),
      fc.oneof(fc.nat({ max: 1100 }), fc.nat({ max: 0xffffffff })),
      (block, firstPage, count) => {
        const ok = block < 2 && count >= 1 &&
          BigInt(firstPage) + BigInt(count) <= BigInt(layout[block].pages);
        let threw = false;
        try {
          checkRun(layout, block, firstPage, count);
        } catch (e) {
          assert.ok(e instanceof WireError);
          threw = true;
        }
        assert.equal(threw, !ok);
      },
    ),
    { seed, numRuns: 1000 },
  );
});

Deno.test("checkConfig accepts the same layout and names each difference", () => {
  const remote = (pageSize: number, blocks: { name: string; size: number }[]) =>
    decodeConfig(encodeConfig(pageSize, blocks).subarray(FRAME_HEADER_SIZE));
  const same = layout.map(({ name, size }) => ({ name, size }));
  checkConfig(layout, PAGE_SIZE, remote(PAGE_SIZE, same));
  throwsWire(
    () =>
      checkConfig(layoutBlocks([{ name: "pc.ram", size: 134217728 }]), PAGE_SIZE, {
        pageSize: PAGE_SIZE,
        blocks: [{ name: "pc.ram", size: 268435456 }],
      }),
    "Configuration mismatch: RAM block 'pc.ram' is 268435456 bytes on the source, 134217728 here",
  );
  throwsWire(
    () => checkConfig(layout.slice(0, 1), PAGE_SIZE, remote(PAGE_SIZE, same)),
    "Configuration mismatch: block count 2 on the source, 1 here",
  );
  throwsWire(
    () => checkConfig(layout, PAGE_SIZE, remote(65536, [{ name: "pc.ram", size: 65536 }])),
    "Configuration mismatch: page size 65536 on the source, 4096 here",
  );
  throwsWire(
    () => checkConfig(layout, PAGE_SIZE, remote(PAGE_SIZE, [same[0], { name: "foo", size: 0 }])),
    "Configuration mismatch: unknown RAM block 'foo'",
  );
  throwsWire(
    () => checkConfig(layout, PAGE_SIZE, remote(PAGE_SIZE, [same[1], same[0]])),
    "Configuration mismatch: RAM block 'vga.vram' is block 0 on the source, 1 here",
  );
});

Deno.test("section start/end must nest and match", () => {
  const iter2 = { kind: SectionKind.ITERATE, pass: 2, id: 1 };
  checkSectionStart(null, iter2);
  checkSectionEnd(iter2, { kind: SectionKind.ITERATE, pass: 2, id: 1 });
  throwsWire(
    () => checkSectionEnd(iter2, { kind: SectionKind.COMPLETE, pass: 2, id: 1 }),
    "section end (complete pass 2 of section 1) does not match the open section " +
      "(iterate pass 2 of section 1)",
  );
  throwsWire(
    () => checkSectionEnd(iter2, { kind: SectionKind.ITERATE, pass: 3, id: 1 }),
    /not match/,
  );
  throwsWire(
    () => checkSectionEnd(iter2, { kind: SectionKind.ITERATE, pass: 2, id: 2 }),
    /section end \(iterate pass 2 of section 2\) does not match/,
  );
  throwsWire(
    () => checkSectionEnd(null, { kind: SectionKind.SETUP, pass: 0, id: 1 }),
    "section end (setup pass 0 of section 1) without an open section",
  );
  throwsWire(
    () => checkSectionStart(iter2, { kind: SectionKind.COMPLETE, pass: 3, id: 1 }),
    "section (complete pass 3 of section 1) started while section (iterate pass 2 of " +
      "section 1) is still open",
  );
});
