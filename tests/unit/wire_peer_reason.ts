/**
 * The destination's reason (return-path type 0xfe01) and the source's CANCEL frame (0x09):
 * pure encoders and decoders with their bounds, without sockets.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeFrameHeader,
  decodeRpHeader,
  decodeRpReason,
  encodeCancel,
  encodeRpReason,
  FrameType,
  isRpReason,
  RP_HEADER_SIZE,
  RP_MAX_LEN,
  RP_REASON,
  WireError,
} from "../../domain/wire/mod.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

function data(b: Uint8Array): Uint8Array {
  const length = (b[2] << 8) | b[3];
  assert.equal(b.length, RP_HEADER_SIZE + length);
  return b.subarray(RP_HEADER_SIZE);
}

function throwsWire(f: () => unknown, message: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof WireError, `expected WireError, got ${e}`);
    assert.match(e.message, message);
    return true;
  });
}

Deno.test("a reason round-trips: header 0xfe01, length, the text in UTF-8", () => {
  const text = "Configuration mismatch: RAM block 'pc.ram' is 268435456 bytes on the source";
  const b = encodeRpReason(text);
  assert.deepEqual([...b.subarray(0, 4)], [0xfe, 0x01, 0, text.length]);
  assert.ok(isRpReason(b));
  assert.equal(decodeRpReason(data(b)), text);
});

Deno.test("any text fits: cut at 512 bytes on a character boundary, a prefix of the text", () => {
  fc.assert(
    fc.property(fc.string({ unit: "grapheme", minLength: 1, maxLength: 400 }), (text) => {
      const got = decodeRpReason(data(encodeRpReason(text)));
      assert.ok(new TextEncoder().encode(got).length <= RP_MAX_LEN);
      assert.ok(got.length > 0 && text.startsWith(got), `'${got}' is not a prefix`);
      if (new TextEncoder().encode(text).length <= RP_MAX_LEN) assert.equal(got, text);
    }),
    { seed },
  );
  // 600 bytes of 3-byte characters: 170 whole characters (510 bytes), never half of one.
  assert.equal(decodeRpReason(data(encodeRpReason("€".repeat(200)))), "€".repeat(170));
  assert.equal(decodeRpReason(data(encodeRpReason(""))), "unknown error");
});

Deno.test("a reason is refused when empty, longer than 512 bytes or not UTF-8", () => {
  throwsWire(() => decodeRpReason(new Uint8Array(0)), /length 0 expecting 1 to 512/);
  throwsWire(() => decodeRpReason(new Uint8Array(513).fill(0x41)), /length 513 expecting 1 to 512/);
  throwsWire(() => decodeRpReason(new Uint8Array([0xc3, 0x28])), /not valid UTF-8/);
});

Deno.test("the reason's type is not one of QEMU's: the QEMU-format decoder rejects it", () => {
  assert.equal(RP_REASON, 0xfe01);
  throwsWire(() => decodeRpHeader(encodeRpReason("x")), /RP: Received invalid message 0xfe01/);
  assert.ok(!isRpReason(new Uint8Array([0x00, 0x01, 0, 4])));
  assert.ok(!isRpReason(new Uint8Array([0xfe])));
});

Deno.test("CANCEL is an empty frame 0x09; any payload is refused", () => {
  assert.deepEqual([...encodeCancel()], [0x09, 0, 0, 0, 0]);
  assert.deepEqual(decodeFrameHeader(encodeCancel()), { type: FrameType.CANCEL, length: 0 });
  throwsWire(
    () => decodeFrameHeader(new Uint8Array([0x09, 0, 0, 0, 1])),
    /frame CANCEL has payload length 1, expected 0/,
  );
});
