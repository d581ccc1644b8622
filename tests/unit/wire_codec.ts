import assert from "node:assert/strict";
import fc from "fast-check";
import { utf8Names } from "../helpers/arbitraries.ts";
import {
  checkPageRunLength,
  decodeConfig,
  decodeFrameHeader,
  decodeGlobalState,
  decodeRunHeader,
  decodeSectionEnd,
  decodeSectionFull,
  decodeSectionStart,
  decodeStreamHeader,
  decodeZeroRun,
  encodeConfig,
  encodeEof,
  encodeGlobalState,
  encodePageRun,
  encodeSectionEnd,
  encodeSectionFull,
  encodeSectionStart,
  encodeStreamHeader,
  encodeZeroRun,
  FRAME_HEADER_SIZE,
  FRAMES,
  FrameType,
  MAX_RUN_PAGES,
  putFrameHeader,
  putPageRunHeader,
  putZeroRun,
  STREAM_HEADER_SIZE,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
const opts = { seed, numRuns: 200 };

/** Splits an encoded frame into its checked header and payload. */
function split(frame: Uint8Array): { type: number; payload: Uint8Array } {
  const h = decodeFrameHeader(frame);
  assert.equal(h.length, frame.length - FRAME_HEADER_SIZE);
  return { type: h.type, payload: frame.subarray(FRAME_HEADER_SIZE) };
}

function throwsWire(fn: () => unknown, message: string | RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

function header(type: number, length: number): Uint8Array {
  const b = new Uint8Array(FRAME_HEADER_SIZE);
  putFrameHeader(new DataView(b.buffer), 0, type, length);
  return b;
}

const pageSizeArb = fc.integer({ min: 10, max: 16 }).map((bits) => 2 ** bits);
const nameArb = utf8Names(40);

Deno.test("stream header round-trips and rejects bad magic, version and flags", () => {
  const h = encodeStreamHeader();
  assert.deepEqual([...h], [0x46, 0x45, 0x52, 0x59, 0, 3, 0, 0]);
  decodeStreamHeader(h);
  throwsWire(() => decodeStreamHeader(h.subarray(0, 7)), /migration stream truncated/);
  const bad = h.slice();
  bad[0] = 0x51; // "QEVM"-like
  throwsWire(() => decodeStreamHeader(bad), /^not a Ferry migration stream/);
  const v1 = h.slice();
  v1[5] = 1;
  throwsWire(
    () => decodeStreamHeader(v1),
    "unsupported migration stream version 1 (this side speaks version 3)",
  );
  const v2 = h.slice();
  v2[5] = 2;
  throwsWire(
    () => decodeStreamHeader(v2),
    "unsupported migration stream version 2 (this side speaks version 3)",
  );
  const v4 = h.slice();
  v4[5] = 4;
  throwsWire(
    () => decodeStreamHeader(v4),
    "unsupported migration stream version 4 (this side speaks version 3)",
  );
  const flags = h.slice();
  flags[7] = 1;
  throwsWire(() => decodeStreamHeader(flags), /reserved flags set \(0x0001\)/);
  assert.equal(STREAM_HEADER_SIZE, 8);
});

Deno.test("CONFIG round-trips", () => {
  fc.assert(
    fc.property(
      pageSizeArb,
      fc.uniqueArray(fc.record({ name: nameArb, pages: fc.integer({ min: 0, max: 2 ** 32 }) }), {
        minLength: 1,
        maxLength: 20,
        selector: (b) => b.name,
      }),
      (pageSize, raw) => {
        const blocks = raw.map((b) => ({
          name: b.name,
          size: Math.min(b.pages * pageSize, 2 ** 48),
        }));
        const { type, payload } = split(encodeConfig(pageSize, blocks));
        assert.equal(type, FrameType.CONFIG);
        assert.deepEqual(decodeConfig(payload), { pageSize, blocks });
      },
    ),
    opts,
  );
  const many = Array.from({ length: 1024 }, (_, i) => ({ name: `b${i}`, size: 4096 * i }));
  assert.deepEqual(decodeConfig(split(encodeConfig(4096, many)).payload).blocks, many);
});

Deno.test("SECTION_START/END/FULL, ZERO_RUN, PAGE_RUN, GLOBAL_STATE and EOF round-trip", () => {
  const nameArb = fc.stringMatching(/^[\x21-\x7e]{1,255}$/);
  fc.assert(
    fc.property(
      fc.integer({ min: 1, max: 3 }),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 0xffffffff }),
      nameArb,
      (kind, pass, id, version, name) => {
        const start = split(encodeSectionStart(kind, pass, { id, name, version }));
        assert.equal(start.type, FrameType.SECTION_START);
        assert.deepEqual(decodeSectionStart(start.payload), { kind, pass, id, version, name });
        const end = split(encodeSectionEnd(kind, pass, id));
        assert.equal(end.type, FrameType.SECTION_END);
        assert.deepEqual(decodeSectionEnd(end.payload), { kind, pass, id });
      },
    ),
    opts,
  );
  fc.assert(
    fc.property(
      fc.nat({ max: 0xffff }),
      fc.nat({ max: 0xffffffff }),
      fc.integer({ min: 1, max: 0xffffffff }),
      (block, firstPage, count) => {
        const got = split(encodeZeroRun(block, firstPage, count));
        assert.equal(got.type, FrameType.ZERO_RUN);
        assert.deepEqual(decodeZeroRun(got.payload), { block, firstPage, count });
        const b = new Uint8Array(15);
        assert.equal(putZeroRun(new DataView(b.buffer), 0, block, firstPage, count), 15);
      },
    ),
    opts,
  );
  fc.assert(
    fc.property(
      fc.nat({ max: 0xffff }),
      fc.nat({ max: 0xffffffff }),
      fc.integer({ min: 10, max: 13 }).map((bits) => 2 ** bits),
      fc.integer({ min: 1, max: 4 }),
      fc.integer(),
      (block, firstPage, pageSize, count, fill) => {
        const data = new Uint8Array(count * pageSize).map((_, i) => (i * 31 + fill) & 0xff);
        const got = split(encodePageRun(block, firstPage, pageSize, data));
        assert.equal(got.type, FrameType.PAGE_RUN);
        const run = decodeRunHeader(got.payload.subarray(0, 10));
        assert.deepEqual(run, { block, firstPage, count });
        checkPageRunLength(got.payload.length, run.count, pageSize);
        assert.deepEqual(got.payload.subarray(10), data);
      },
    ),
    { ...opts, numRuns: 50 },
  );
  const full = new Uint8Array(FRAME_HEADER_SIZE + 10 + MAX_RUN_PAGES * 65536);
  const off = putPageRunHeader(new DataView(full.buffer), 0, 1, 2, MAX_RUN_PAGES, 65536);
  assert.equal(off, 15);
  assert.equal(decodeFrameHeader(full).length, FRAMES[FrameType.PAGE_RUN].max);
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 70000 }), (bytes) => {
      const ident = { id: 2, name: "device", version: 1 };
      if (bytes.length > 65536) {
        assert.throws(() => encodeSectionFull(ident, bytes), RangeError);
        return;
      }
      const got = split(encodeSectionFull(ident, bytes));
      assert.equal(got.type, FrameType.SECTION_FULL);
      assert.deepEqual(decodeSectionFull(got.payload), { ...ident, body: bytes });
    }),
    { ...opts, numRuns: 50 },
  );
  fc.assert(
    fc.property(fc.stringMatching(/^[\x21-\x7e]{1,63}$/), (runstate) => {
      const got = split(encodeGlobalState(runstate));
      assert.equal(got.type, FrameType.GLOBAL_STATE);
      assert.equal(decodeGlobalState(got.payload), runstate);
    }),
    opts,
  );
  assert.deepEqual([...encodeEof()], [FrameType.EOF, 0, 0, 0, 0]);
  assert.deepEqual(split(encodeEof()), { type: FrameType.EOF, payload: new Uint8Array(0) });
});

Deno.test("frame header rejects unknown types, wrong fixed lengths and oversize lengths", () => {
  throwsWire(() => decodeFrameHeader(header(0x2a, 0)), "unknown frame type 0x2a");
  throwsWire(() => decodeFrameHeader(header(0x00, 0)), "unknown frame type 0x00");
  throwsWire(() => decodeFrameHeader(header(0x40, 0)), /^unknown frame type 0x40 \(reserved/);
  throwsWire(() => decodeFrameHeader(header(0x2b, 9)), "unknown frame type 0x2b");
  throwsWire(
    () => decodeFrameHeader(header(FrameType.SECTION_END, 5)),
    "frame SECTION_END has payload length 5, expected 9",
  );
  throwsWire(() => decodeFrameHeader(header(FrameType.EOF, 1)), /frame EOF has payload length 1/);
  throwsWire(() => decodeFrameHeader(header(FrameType.ZERO_RUN, 0xffffffff)), /ZERO_RUN/);
  throwsWire(
    () => decodeFrameHeader(header(FrameType.CONFIG, 65537)),
    "frame CONFIG payload length 65537 exceeds the maximum 65536",
  );
  throwsWire(() => decodeFrameHeader(header(FrameType.SECTION_FULL, 0xffffffff)), /exceeds/);
  throwsWire(() => decodeFrameHeader(header(FrameType.GLOBAL_STATE, 65)), /exceeds the maximum 64/);
  throwsWire(
    () => decodeFrameHeader(header(FrameType.PAGE_RUN, 10 + 1024 * 65536 + 1)),
    "frame PAGE_RUN payload length 67108875 exceeds the maximum 67108874",
  );
  throwsWire(() => decodeFrameHeader(header(FrameType.PAGE_RUN, 9)), /below the minimum/);
  throwsWire(() => decodeFrameHeader(header(FrameType.CONFIG, 0).subarray(0, 4)), /truncated/);
  assert.deepEqual(decodeFrameHeader(header(FrameType.SECTION_FULL, 65800)), {
    type: FrameType.SECTION_FULL,
    length: 65800,
  });
  throwsWire(
    () => decodeFrameHeader(header(FrameType.SECTION_FULL, 65801)),
    "frame SECTION_FULL payload length 65801 exceeds the maximum 65800",
  );
  // Offsets: the header is read where asked.
  const two = new Uint8Array([9, ...header(FrameType.EOF, 0)]);
  assert.deepEqual(decodeFrameHeader(two, 1), { type: FrameType.EOF, length: 0 });
});

Deno.test("malformed payloads are rejected with WireError", () => {
  const cfg = split(encodeConfig(4096, [{ name: "pc.ram", size: 8192 }])).payload;
  const with_ = (f: (b: Uint8Array, v: DataView) => void) => {
    const b = cfg.slice();
    f(b, new DataView(b.buffer));
    return b;
  };
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint32(0, 4097))), /page size 4097/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint32(0, 512))), /page size 512/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint16(4, 0))), /block count 0/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint16(4, 1025))), /block count 1025/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint16(4, 2))), /truncated in block 1/);
  throwsWire(() => decodeConfig(with_((b) => (b[6] = 0))), /block 0 has an empty name/);
  throwsWire(() => decodeConfig(with_((b) => (b[6] = 200))), /truncated in block 0/);
  throwsWire(() => decodeConfig(with_((b) => (b[7] = 0xff))), /not valid UTF-8/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint32(17, 100))), /not a multiple/);
  throwsWire(() => decodeConfig(with_((_, v) => v.setUint32(13, 0x10001))), /exceeds 2\^48/);
  throwsWire(() => decodeConfig(new Uint8Array([...cfg, 0])), /1 trailing bytes/);
  throwsWire(() => decodeConfig(cfg.subarray(0, 5)), /truncated/);
  const dup = encodeConfig(4096, [{ name: "a", size: 0 }, { name: "b", size: 0 }]).slice(5);
  dup[7 + 9 + 1] = 0x61; // second name "b" -> "a"
  throwsWire(() => decodeConfig(dup), "CONFIG names RAM block 'a' twice");

  throwsWire(
    () => decodeSectionEnd(new Uint8Array([0, 0, 0, 0, 1, 0, 0, 0, 1])),
    "unknown section kind 0",
  );
  throwsWire(
    () => decodeSectionEnd(new Uint8Array([4, 0, 0, 0, 1, 0, 0, 0, 1])),
    "unknown section kind 4",
  );
  throwsWire(() => decodeSectionEnd(new Uint8Array(5)), /expected 9/);

  const zero = split(encodeZeroRun(0, 0, 1)).payload.slice();
  zero[9] = 0;
  throwsWire(() => decodeZeroRun(zero), "ZERO_RUN with a page count of 0");
  throwsWire(() => decodeZeroRun(new Uint8Array(9)), /expected 10/);
  throwsWire(() => decodeRunHeader(zero), "PAGE_RUN with a page count of 0");
  zero[8] = 4; // count 1025
  zero[9] = 1;
  throwsWire(() => decodeRunHeader(zero), "PAGE_RUN page count 1025 exceeds 1024");
  throwsWire(() => decodeRunHeader(new Uint8Array(9)), /truncated/);
  throwsWire(
    () => checkPageRunLength(10 + 4096, 2, 4096),
    "PAGE_RUN of 2 pages has payload length 4106, expected 8202",
  );

  throwsWire(() => decodeGlobalState(new Uint8Array(0)), /empty/);
  throwsWire(() => decodeGlobalState(new Uint8Array([0])), /name is empty/);
  throwsWire(() => decodeGlobalState(new Uint8Array([3, 0x61, 0x62])), /expected 4/);
  throwsWire(() => decodeGlobalState(new Uint8Array([2, 0x61, 0x0a])), /non-printable/);
});

Deno.test("decoders given random bytes return or throw WireError, nothing else", () => {
  const decoders = [
    decodeConfig,
    decodeSectionStart,
    decodeSectionEnd,
    decodeSectionFull,
    decodeZeroRun,
    decodeRunHeader,
    decodeGlobalState,
    decodeStreamHeader,
    decodeFrameHeader,
  ];
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 300 }), (bytes) => {
      for (const decode of decoders) {
        try {
          decode(bytes);
        } catch (e) {
          assert.ok(e instanceof WireError, `${decode.name}: ${e}`);
        }
      }
    }),
    { ...opts, numRuns: 500 },
  );
  // Mutations of a valid CONFIG reach the deeper checks.
  const valid = split(encodeConfig(4096, [{ name: "pc.ram", size: 2 ** 30 }, {
    name: "vga.vram",
    size: 2 ** 24,
  }])).payload;
  fc.assert(
    fc.property(fc.nat({ max: valid.length - 1 }), fc.nat({ max: 255 }), (i, byte) => {
      const b = valid.slice();
      b[i] = byte;
      try {
        decodeConfig(b);
      } catch (e) {
        assert.ok(e instanceof WireError, String(e));
      }
    }),
    { ...opts, numRuns: 500 },
  );
});

Deno.test("encoders refuse values the format cannot carry", () => {
  const v = new DataView(new ArrayBuffer(64));
  assert.throws(() => putPageRunHeader(v, 0, 0, 0, 0, 4096), RangeError);
  assert.throws(() => putPageRunHeader(v, 0, 0, 0, MAX_RUN_PAGES + 1, 4096), RangeError);
  assert.throws(() => putPageRunHeader(v, 0, 0, 0, 1, 3000), RangeError);
  assert.throws(() => putPageRunHeader(v, 0, 0x10000, 0, 1, 4096), RangeError);
  assert.throws(() => putZeroRun(v, 0, 0, 2 ** 32, 1), RangeError);
  assert.throws(() => putZeroRun(v, 0, 0, 0, 0), RangeError);
  const ram = { id: 1, name: "ram", version: 1 };
  assert.throws(() => encodeSectionStart(0, 0, ram), RangeError);
  assert.throws(() => encodeSectionStart(1, 2 ** 32, ram), RangeError);
  assert.throws(() => encodeSectionStart(1, 0, { ...ram, name: "" }), RangeError);
  assert.throws(() => encodeSectionStart(1, 0, { ...ram, name: "r".repeat(256) }), RangeError);
  assert.throws(() => encodeSectionEnd(4, 0, 1), RangeError);
  assert.throws(() => encodeSectionFull({ ...ram, id: -1 }, new Uint8Array(0)), RangeError);
  assert.throws(() => putFrameHeader(v, 0, 1, 2 ** 32), RangeError);
  assert.throws(() => encodeConfig(4096, []), RangeError);
  assert.throws(() => encodeConfig(4096, [{ name: "", size: 0 }]), RangeError);
  assert.throws(() => encodeConfig(4096, [{ name: "a", size: 100 }]), RangeError);
  assert.throws(() => encodeConfig(4096, [{ name: "a", size: 2 ** 48 + 4096 }]), RangeError);
  const fat = Array.from({ length: 300 }, (_, i) => ({ name: `${i}`.padEnd(250, "x"), size: 0 }));
  assert.throws(() => encodeConfig(4096, fat), /exceeds 65536/);
  assert.throws(() => encodeGlobalState(""), RangeError);
  assert.throws(() => encodeGlobalState("x".repeat(64)), RangeError);
  assert.throws(() => encodePageRun(0, 0, 4096, new Uint8Array(100)), RangeError);
});
