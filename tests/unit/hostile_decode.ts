/**
 * Issue 6, hostile streams at the decode level (no sockets, thousands of cases): every
 * decoder a destination or a source applies to a peer's bytes answers arbitrary and mutated
 * input with a value or a WireError carrying a clear message — never another exception —
 * and the streaming readers (FrameReader, the source's return-path reader) read any byte
 * stream to its end or a WireError through fixed buffers.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { decodeDeviceState, DeviceStateError } from "../../adapters/memory/device_state.ts";
import { layoutBlocks } from "../../adapters/memory/layout.ts";
import { readReturnPath } from "../../domain/engine/return_path_reader.ts";
import { decodeEncodedPage } from "../../domain/wire/encoded_page.ts";
import {
  be16,
  checkConfig,
  checkPageRunLength,
  checkRun,
  decodeConfig,
  decodeFrameHeader,
  decodeGlobalState,
  decodeRpHeader,
  decodeRpMessage,
  decodeRunHeader,
  decodeSectionEnd,
  decodeSectionFull,
  decodeSectionStart,
  decodeStreamHeader,
  decodeZeroRun,
  encodeRpMessage,
  FrameReader,
  FrameType,
  MIN_READER_BUFFER,
  RpType,
  WireError,
} from "../../domain/wire/mod.ts";
import {
  decodeHello,
  decodeJoin,
  decodeJoined,
  decodeRedirect,
  decodeSetup,
  encodeHello,
  encodeJoin,
  encodeJoined,
  encodeRedirect,
  encodeSetup,
} from "../../domain/wire/multifd.ts";
import {
  decodeDiscard,
  decodeRecvBitmapRequest,
  decodeU32,
  encodeBitmapDump,
  encodeDiscard,
  encodeRecvBitmapRequest,
} from "../../domain/wire/postcopy.ts";
import {
  assertClearError,
  HOSTILE_LAYOUT,
  HOSTILE_RAM,
  idleDeviceState,
  PAGE,
  validFrames,
} from "../helpers/hostile_streams.ts";
import { concat } from "../helpers/bytes.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const payload = (frame: Uint8Array) => frame.subarray(5);
const uuid = new Uint8Array(16).fill(7);
const frames = validFrames({ returnPath: true });
const of = (type: number) => frames.find((f) => f[0] === type)!;

/** Each decoder with honest samples of its input (mutated below). */
const DECODERS: [string, (b: Uint8Array) => unknown, Uint8Array[]][] = [
  ["decodeStreamHeader", decodeStreamHeader, [frames[0]]],
  ["decodeFrameHeader", (b) => decodeFrameHeader(b), frames.slice(1, 12)],
  ["decodeConfig", decodeConfig, [payload(of(FrameType.CONFIG))]],
  ["decodeSectionStart", decodeSectionStart, [payload(of(FrameType.SECTION_START))]],
  ["decodeSectionEnd", decodeSectionEnd, [payload(of(FrameType.SECTION_END))]],
  ["decodeSectionFull", decodeSectionFull, [payload(of(FrameType.SECTION_FULL))]],
  ["decodeZeroRun", decodeZeroRun, [payload(of(FrameType.ZERO_RUN))]],
  ["decodeRunHeader", decodeRunHeader, [payload(of(FrameType.PAGE_RUN)).subarray(0, 10)]],
  ["decodeGlobalState", decodeGlobalState, [payload(of(FrameType.GLOBAL_STATE))]],
  ["decodeDiscard", decodeDiscard, [payload(encodeDiscard(1, [{ first: 2, count: 3 }])[0])]],
  ["decodeU32", decodeU32, [payload(of(FrameType.PING))]],
  ["decodeSetup", decodeSetup, [payload(encodeSetup(uuid, 64, 4))]],
  ["decodeHello", decodeHello, [
    payload(encodeHello({ uuid, id: 1, channels: 4 })),
    payload(encodeHello({ uuid, id: 1, channels: 4, redirectable: true })),
  ]],
  ["decodeRedirect", decodeRedirect, [
    payload(encodeRedirect({ token: uuid, answer: uuid, address: "tcp:127.0.0.1:4000" })),
    payload(encodeRedirect({ token: uuid, answer: uuid, address: "" })),
  ]],
  ["decodeJoin", decodeJoin, [payload(encodeJoin(uuid))]],
  ["decodeJoined", decodeJoined, [payload(encodeJoined(uuid))]],
  ["decodeRecvBitmapRequest", decodeRecvBitmapRequest, [payload(encodeRecvBitmapRequest("vga"))]],
  ["decodeEncodedPage", decodeEncodedPage, [new Uint8Array([0, 1, 0, 0, 0, 3, 0, 1, 9])]],
  ["decodeRpHeader", (b) => decodeRpHeader(b), [new Uint8Array([0, 3, 0, 16])]],
  [
    "decodeRpMessage",
    (b) => decodeRpMessage(be16(b, 0), b.subarray(4)),
    [
      encodeRpMessage({ type: RpType.REQ_PAGES_ID, start: 8192, len: 4096, name: "pc.ram" }),
      encodeRpMessage({ type: RpType.RECV_BITMAP, name: "vga" }),
      encodeRpMessage({ type: RpType.SHUT, error: 0 }),
      encodeRpMessage({ type: RpType.REQ_PAGES, start: 0, len: 4096 }),
    ],
  ],
  ["decodeDeviceState", (b) => decodeDeviceState(b, HOSTILE_RAM), [idleDeviceState()]],
];

/** Honest input, then flipped, overwritten, truncated or extended; or plain random bytes. */
function hostileInput(samples: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  const edit = fc.record({
    sample: fc.nat({ max: samples.length - 1 }),
    edits: fc.array(
      fc.tuple(fc.constantFrom("flip", "set", "cut", "grow"), fc.nat(), fc.nat({ max: 255 })),
      { minLength: 1, maxLength: 4 },
    ),
  }).map(({ sample, edits }) => {
    let b: Uint8Array = samples[sample].slice();
    for (const [kind, at, v] of edits) {
      const i = b.length ? at % b.length : 0;
      if (kind === "flip" && b.length) b[i] ^= 1 << (v & 7);
      else if (kind === "set" && b.length) b[i] = v;
      else if (kind === "cut") b = b.slice(0, i);
      else b = concat([b, new Uint8Array(1 + (v & 31)).fill(v)]);
    }
    return b;
  });
  return fc.oneof(edit, fc.uint8Array({ maxLength: 700 }));
}

/** Runs `f`; a thrown error must be a WireError (or a device-state error) with a clear text. */
function decodesOrRejects(name: string, f: () => unknown): void {
  try {
    f();
  } catch (e) {
    if (!(e instanceof WireError) && !(e instanceof DeviceStateError)) {
      throw new Error(`${name} threw ${e instanceof Error ? e.name : typeof e}: ${e}`);
    }
    assertClearError(e.message, name);
  }
}

Deno.test("hostile decode: every decoder answers hostile bytes with a value or a clear WireError", () => {
  for (const [name, decode, samples] of DECODERS) {
    fc.assert(
      fc.property(hostileInput(samples), (b) => decodesOrRejects(name, () => decode(b))),
      { seed, numRuns: 600 },
    );
  }
});

Deno.test("hostile decode: checks against the local layout bound every run and CONFIG", () => {
  const layout = layoutBlocks(HOSTILE_LAYOUT);
  fc.assert(
    fc.property(
      fc.nat({ max: 0xffff }),
      fc.nat({ max: 0xffffffff }),
      fc.nat({ max: 0xffffffff }),
      (block, first, count) => {
        let ok = true;
        try {
          checkRun(layout, block, first, count);
        } catch (e) {
          assert.ok(e instanceof WireError);
          assertClearError(e.message, "checkRun");
          ok = false;
        }
        // Accepted exactly when the run lies inside an existing block.
        assert.equal(
          ok,
          block < layout.length && count >= 1 && first + count <= layout[block].pages,
        );
        decodesOrRejects("checkPageRunLength", () => checkPageRunLength(first, count % 300, PAGE));
      },
    ),
    { seed, numRuns: 3000 },
  );
  const honest = payload(of(FrameType.CONFIG));
  fc.assert(
    fc.property(hostileInput([honest]), (b) => {
      decodesOrRejects("checkConfig", () => checkConfig(layout, PAGE, decodeConfig(b)));
    }),
    { seed, numRuns: 1000 },
  );
});

/** Feeds `bytes` into one end of a memory pair (then end of stream); returns the other end. */
function feed(bytes: Uint8Array) {
  const [a, b] = memoryChannelPair(64 << 10);
  const writing = (async () => {
    try {
      for (let off = 0; off < bytes.length;) off += await a.write(bytes.subarray(off));
      await a.closeWrite();
    } catch { /* the reader gave up first */ }
  })();
  return {
    channel: b,
    async done() {
      b.close();
      await writing;
      a.close();
    },
  };
}

Deno.test("hostile decode: FrameReader reads any stream to EOF or a WireError", async () => {
  const base = concat(frames);
  const streams = fc.oneof(
    hostileInput([base, base.subarray(0, 4096), concat([frames[0], new Uint8Array(64)])]),
    fc.uint8Array({ maxLength: 2048 }).map((g) => concat([frames[0], g])),
  );
  await fc.assert(
    fc.asyncProperty(streams, async (bytes) => {
      const { channel, done } = feed(bytes);
      const reader = new FrameReader(channel, MIN_READER_BUFFER);
      try {
        await reader.readStreamHeader(null);
        for (;;) {
          const h = await reader.next();
          if (h.type === FrameType.EOF) break;
          if (h.length <= 65536) await reader.readPayload();
          else await reader.skip();
        }
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        assertClearError(e.message, "FrameReader");
      } finally {
        await done();
      }
      assert.ok(reader.bytesRead <= bytes.length, "never reads past what was sent");
    }),
    { seed, numRuns: 1500 },
  );
});

Deno.test("hostile decode: the source's return-path reader rejects hostile messages clearly", async () => {
  const layout = layoutBlocks(HOSTILE_LAYOUT);
  const pages = layout.reduce((n, b) => n + b.pages, 0);
  const honest = concat([
    encodeRpMessage({ type: RpType.PONG, value: 1 }),
    encodeRpMessage({ type: RpType.REQ_PAGES_ID, start: 4096, len: 8192, name: "vga" }),
    encodeRpMessage({ type: RpType.REQ_PAGES, start: 0, len: 4096 }),
    encodeRpMessage({ type: RpType.RECV_BITMAP, name: "vga" }),
    encodeBitmapDump(new Uint8Array(64).fill(1), 64),
    encodeRpMessage({ type: RpType.RESUME_ACK, value: 1 }),
    encodeRpMessage({ type: RpType.SHUT, error: 0 }),
  ]);
  await fc.assert(
    fc.asyncProperty(hostileInput([honest, honest.subarray(0, 40)]), async (bytes) => {
      const { channel, done } = feed(bytes);
      try {
        await readReturnPath(channel, layout, PAGE, {
          onShut: () => {},
          onRequest: (first, count) => {
            assert.ok(first >= 0 && count >= 1 && first + count <= pages, `${first}+${count}`);
          },
          onReceivedBitmap: (block, bits) => {
            assert.equal(bits.length, Math.ceil(layout[block].pages / 8));
          },
          onResumeAck: () => {},
        });
      } catch (e) {
        if (!(e instanceof WireError)) throw e;
        assertClearError(e.message, "readReturnPath");
      } finally {
        await done();
      }
    }),
    { seed, numRuns: 2000 },
  );
});
