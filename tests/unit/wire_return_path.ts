import assert from "node:assert/strict";
import fc from "fast-check";
import { utf8Names } from "../helpers/arbitraries.ts";
import {
  decodeRpHeader,
  decodeRpMessage,
  encodeRpMessage,
  encodeRpPong,
  encodeRpRecvBitmap,
  encodeRpReqPages,
  encodeRpReqPagesId,
  encodeRpResumeAck,
  encodeRpShut,
  RP_HEADER_SIZE,
  type RpMessage,
  RpType,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

function rejects(type: number, data: Uint8Array, message: string | RegExp): void {
  assert.throws(() => decodeRpMessage(type, data), (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${e}`);
    if (typeof message === "string") assert.equal(e.message, message);
    else assert.match(e.message, message);
    return true;
  });
}

function rawHeader(type: number, length: number): Uint8Array {
  return new Uint8Array([type >> 8, type & 0xff, length >> 8, length & 0xff]);
}

const nameArb = utf8Names(60);
const u32 = fc.nat({ max: 0xffffffff });
const start = fc.nat({ max: Number.MAX_SAFE_INTEGER });
const messageArb: fc.Arbitrary<RpMessage> = fc.oneof(
  u32.map((error) => ({ type: RpType.SHUT, error })),
  u32.map((value) => ({ type: RpType.PONG, value })),
  u32.map((value) => ({ type: RpType.RESUME_ACK, value })),
  fc.tuple(start, u32).map(([start, len]) => ({ type: RpType.REQ_PAGES, start, len })),
  fc.tuple(start, u32, nameArb).map(([start, len, name]) => ({
    type: RpType.REQ_PAGES_ID,
    start,
    len,
    name,
  })),
  nameArb.map((name) => ({ type: RpType.RECV_BITMAP, name })),
);

Deno.test("every return-path message round-trips", () => {
  fc.assert(
    fc.property(messageArb, (m) => {
      const b = encodeRpMessage(m);
      const h = decodeRpHeader(b);
      assert.equal(h.type, m.type);
      assert.equal(h.length, b.length - RP_HEADER_SIZE);
      assert.deepEqual(decodeRpMessage(h.type, b.subarray(RP_HEADER_SIZE)), m);
    }),
    { seed, numRuns: 500 },
  );
  assert.deepEqual([...encodeRpShut(1)], [0, 1, 0, 4, 0, 0, 0, 1]);
  assert.deepEqual([...encodeRpPong(7)], [0, 2, 0, 4, 0, 0, 0, 7]);
  assert.deepEqual([...encodeRpResumeAck(1)], [0, 6, 0, 4, 0, 0, 0, 1]);
  assert.deepEqual(
    [...encodeRpReqPages(2 ** 32 + 4096, 8192)],
    [0, 4, 0, 12, 0, 0, 0, 1, 0, 0, 0x10, 0, 0, 0, 0x20, 0],
  );
  assert.deepEqual([...encodeRpRecvBitmap("ab")], [0, 5, 0, 3, 2, 0x61, 0x62]);
  assert.equal(encodeRpReqPagesId(0, 4096, "pc.ram").length, 4 + 13 + 6);
});

Deno.test("return-path headers are checked as QEMU's source checks them", () => {
  const hdr = (type: number, len: number) => () => decodeRpHeader(rawHeader(type, len));
  assert.throws(hdr(9, 4), new WireError("RP: Received invalid message 0x0009 length 0x0004"));
  assert.throws(hdr(0, 0), new WireError("RP: Received invalid message 0x0000 length 0x0000"));
  assert.throws(hdr(7, 0), /invalid message 0x0007/);
  assert.throws(hdr(0xffff, 0xffff), /invalid message 0xffff length 0xffff/);
  assert.throws(
    hdr(1, 3),
    new WireError("RP: Received 'SHUT' message (0x0001) with incorrect length 3 expecting 4"),
  );
  assert.throws(hdr(2, 5), /'PONG' message \(0x0002\) with incorrect length 5 expecting 4/);
  assert.throws(hdr(4, 11), /'REQ_PAGES' message \(0x0004\) with incorrect length 11 expecting 12/);
  assert.throws(hdr(6, 0), /'RESUME_ACK'.*expecting 4/);
  assert.throws(
    hdr(3, 513),
    new WireError(
      "RP: Received 'REQ_PAGES_ID' message (0x0003) with incorrect length 513 expecting at most 512",
    ),
  );
  assert.throws(hdr(5, 0xffff), /'RECV_BITMAP'.*expecting at most 512/);
  assert.throws(() => decodeRpHeader(new Uint8Array(3)), /RP: message header truncated/);
  assert.deepEqual(decodeRpHeader(rawHeader(3, 512)), { type: 3, length: 512 });
  assert.deepEqual(decodeRpHeader(new Uint8Array([9, ...rawHeader(1, 4)]), 1), {
    type: 1,
    length: 4,
  });
});

Deno.test("return-path message data is validated", () => {
  rejects(1, new Uint8Array(3), /'SHUT'.*incorrect length 3 expecting 4/);
  rejects(9, new Uint8Array(4), "RP: Received invalid message 0x0009 length 0x0004");
  const id = encodeRpReqPagesId(4096, 4096, "pc.ram").slice(RP_HEADER_SIZE);
  rejects(3, id.subarray(0, id.length - 1), "RP: Req_Page_id with length 18 expecting 19");
  rejects(3, new Uint8Array([...id, 0]), "RP: Req_Page_id with length 20 expecting 19");
  rejects(3, id.subarray(0, 12), "RP: Req_Page_id with length 12 expecting 13");
  rejects(3, new Uint8Array(13), "RP: Req_Page_id with an empty block name");
  const badUtf8 = id.slice();
  badUtf8[13] = 0xc3;
  rejects(3, badUtf8, /Req_Page_id block name is not valid UTF-8/);
  const farStart = id.slice();
  farStart.fill(0xff, 0, 8);
  rejects(3, farStart, /start 0x[0-9a-f]+ out of range/);
  rejects(4, new Uint8Array(12).fill(0xff), /REQ_PAGES start .* out of range/);
  rejects(5, new Uint8Array(0), "RP: RECV_BITMAP missing block name");
  rejects(5, new Uint8Array([0]), "RP: RECV_BITMAP missing block name");
  rejects(5, new Uint8Array([3, 0x61, 0x62]), "RP: RECV_BITMAP with length 3 expecting 4");
  rejects(5, new Uint8Array([1, 0x61, 0x62]), "RP: RECV_BITMAP with length 3 expecting 2");
  rejects(5, new Uint8Array(600), /incorrect length 600 expecting at most 512/);
});

Deno.test("random return-path bytes decode or throw WireError, nothing else", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 600 }), (b) => {
      try {
        const h = decodeRpHeader(b);
        decodeRpMessage(h.type, b.subarray(RP_HEADER_SIZE, RP_HEADER_SIZE + h.length));
      } catch (e) {
        assert.ok(e instanceof WireError, String(e));
      }
    }),
    { seed, numRuns: 1000 },
  );
});

Deno.test("return-path encoders refuse what the format cannot carry", () => {
  assert.throws(() => encodeRpShut(-1), RangeError);
  assert.throws(() => encodeRpPong(2 ** 32), RangeError);
  assert.throws(() => encodeRpReqPages(-1, 0), RangeError);
  assert.throws(() => encodeRpReqPages(0, 2 ** 32), RangeError);
  assert.throws(() => encodeRpReqPagesId(0, 0, ""), RangeError);
  assert.throws(() => encodeRpRecvBitmap("x".repeat(256)), RangeError);
});
