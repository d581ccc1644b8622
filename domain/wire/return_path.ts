/**
 * The return path (destination → source), in QEMU's format: `u16 type, u16 length, data`,
 * big-endian, at most 512 bytes of data, with the same validation as QEMU's source side.
 *
 * @module
 */

import { be16, be32 } from "./frames.ts";
import { WireError } from "./wire_error.ts";

/** Return-path message types (QEMU's `mig_rp_message_type`). */
export const RpType = {
  INVALID: 0,
  SHUT: 1,
  PONG: 2,
  REQ_PAGES_ID: 3,
  REQ_PAGES: 4,
  RECV_BITMAP: 5,
  RESUME_ACK: 6,
  MAX: 7,
} as const;

/** Size of a return-path message header. */
export const RP_HEADER_SIZE = 4;
/** Largest return-path message data (QEMU's receive buffer). */
export const RP_MAX_LEN = 512;
/** The value a RESUME_ACK must carry (QEMU's `MIGRATION_RESUME_ACK_VALUE`). */
export const RESUME_ACK_VALUE = 1;

/** Return-path message table: data length (-1 = variable) and name, indexed by type. */
export const RP_MESSAGES: readonly Readonly<{ len: number; name: string }>[] = [
  { len: -1, name: "INVALID" },
  { len: 4, name: "SHUT" },
  { len: 4, name: "PONG" },
  { len: -1, name: "REQ_PAGES_ID" },
  { len: 12, name: "REQ_PAGES" },
  { len: -1, name: "RECV_BITMAP" },
  { len: 4, name: "RESUME_ACK" },
];

/** A decoded return-path message. `start`/`len` are byte offsets/lengths in a RAM block. */
export type RpMessage =
  | { type: typeof RpType.SHUT; error: number }
  | { type: typeof RpType.PONG; value: number }
  | { type: typeof RpType.REQ_PAGES_ID; start: number; len: number; name: string }
  | { type: typeof RpType.REQ_PAGES; start: number; len: number }
  | { type: typeof RpType.RECV_BITMAP; name: string }
  | { type: typeof RpType.RESUME_ACK; value: number };

const utf8Enc = new TextEncoder();
const utf8Dec = new TextDecoder("utf-8", { fatal: true });

function hex16(n: number): string {
  return "0x" + n.toString(16).padStart(4, "0");
}

function message(type: number, data: Uint8Array): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(RP_HEADER_SIZE + data.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, type);
  v.setUint16(2, data.length);
  b.set(data, RP_HEADER_SIZE);
  return b;
}

function u32Message(type: number, value: number): Uint8Array<ArrayBuffer> {
  if (value >>> 0 !== value) throw new RangeError(`value ${value} is not a u32`);
  const d = new Uint8Array(4);
  new DataView(d.buffer).setUint32(0, value);
  return message(type, d);
}

function nameBytes(name: string): Uint8Array {
  const n = utf8Enc.encode(name);
  if (n.length < 1 || n.length > 255) {
    throw new RangeError(`block name '${name}' is not 1..255 bytes of UTF-8`);
  }
  return n;
}

function startLen(d: DataView, start: number, len: number): void {
  if (!Number.isSafeInteger(start) || start < 0) throw new RangeError(`start ${start} invalid`);
  if (len >>> 0 !== len) throw new RangeError(`len ${len} is not a u32`);
  d.setUint32(0, Math.floor(start / 2 ** 32));
  d.setUint32(4, start >>> 0);
  d.setUint32(8, len);
}

/** Encodes SHUT: the destination sends nothing more; `error` nonzero means it failed. */
export function encodeRpShut(error: number): Uint8Array<ArrayBuffer> {
  return u32Message(RpType.SHUT, error);
}

/** Encodes PONG, the answer to a PING carrying its value. */
export function encodeRpPong(value: number): Uint8Array<ArrayBuffer> {
  return u32Message(RpType.PONG, value);
}

/** Encodes RESUME_ACK (the value should be {@link RESUME_ACK_VALUE}). */
export function encodeRpResumeAck(value: number): Uint8Array<ArrayBuffer> {
  return u32Message(RpType.RESUME_ACK, value);
}

/** Encodes REQ_PAGES: `len` bytes at byte `start` of the last named RAM block. */
export function encodeRpReqPages(start: number, len: number): Uint8Array<ArrayBuffer> {
  const d = new Uint8Array(12);
  startLen(new DataView(d.buffer), start, len);
  return message(RpType.REQ_PAGES, d);
}

/** Encodes REQ_PAGES_ID: `len` bytes at byte `start` of RAM block `name`. */
export function encodeRpReqPagesId(
  start: number,
  len: number,
  name: string,
): Uint8Array<ArrayBuffer> {
  const n = nameBytes(name);
  const d = new Uint8Array(13 + n.length);
  startLen(new DataView(d.buffer), start, len);
  d[12] = n.length;
  d.set(n, 13);
  return message(RpType.REQ_PAGES_ID, d);
}

/** Encodes RECV_BITMAP: asks for the received bitmap of RAM block `name`. */
export function encodeRpRecvBitmap(name: string): Uint8Array<ArrayBuffer> {
  const n = nameBytes(name);
  const d = new Uint8Array(1 + n.length);
  d[0] = n.length;
  d.set(n, 1);
  return message(RpType.RECV_BITMAP, d);
}

/** Encodes any {@link RpMessage}. */
export function encodeRpMessage(m: RpMessage): Uint8Array<ArrayBuffer> {
  switch (m.type) {
    case RpType.SHUT:
      return encodeRpShut(m.error);
    case RpType.PONG:
      return encodeRpPong(m.value);
    case RpType.RESUME_ACK:
      return encodeRpResumeAck(m.value);
    case RpType.REQ_PAGES:
      return encodeRpReqPages(m.start, m.len);
    case RpType.REQ_PAGES_ID:
      return encodeRpReqPagesId(m.start, m.len, m.name);
    case RpType.RECV_BITMAP:
      return encodeRpRecvBitmap(m.name);
  }
}

/** Checks a message type and data length as QEMU's source does; throws {@link WireError}. */
function checkRpHeader(type: number, length: number): void {
  if (type === RpType.INVALID || type >= RpType.MAX) {
    throw new WireError(`RP: Received invalid message ${hex16(type)} length ${hex16(length)}`);
  }
  const spec = RP_MESSAGES[type];
  if ((spec.len !== -1 && length !== spec.len) || length > RP_MAX_LEN) {
    const expecting = spec.len === -1 ? `at most ${RP_MAX_LEN}` : `${spec.len}`;
    throw new WireError(
      `RP: Received '${spec.name}' message (${hex16(type)}) with incorrect length ${length} ` +
        `expecting ${expecting}`,
    );
  }
}

/** Decodes and checks the 4-byte header at `b[off]`: type 1..6, fixed lengths, ≤ 512 bytes. */
export function decodeRpHeader(b: Uint8Array, off = 0): { type: number; length: number } {
  if (b.length - off < RP_HEADER_SIZE) {
    throw new WireError(`RP: message header truncated (${Math.max(0, b.length - off)} of 4 bytes)`);
  }
  const type = be16(b, off);
  const length = be16(b, off + 2);
  checkRpHeader(type, length);
  return { type, length };
}

function decodeName(b: Uint8Array, what: string): string {
  try {
    return utf8Dec.decode(b);
  } catch {
    throw new WireError(`RP: ${what} block name is not valid UTF-8`);
  }
}

function decodeStart(data: Uint8Array, what: string): number {
  const start = be32(data, 0) * 2 ** 32 + be32(data, 4);
  if (start > Number.MAX_SAFE_INTEGER) {
    throw new WireError(`RP: ${what} start 0x${start.toString(16)} out of range`);
  }
  return start;
}

/** Decodes a message's data (the bytes after the header) with QEMU's checks. */
export function decodeRpMessage(type: number, data: Uint8Array): RpMessage {
  checkRpHeader(type, data.length);
  switch (type) {
    case RpType.SHUT:
      return { type, error: be32(data, 0) };
    case RpType.PONG:
      return { type, value: be32(data, 0) };
    case RpType.RESUME_ACK:
      return { type, value: be32(data, 0) };
    case RpType.REQ_PAGES:
      return { type, start: decodeStart(data, "REQ_PAGES"), len: be32(data, 8) };
    case RpType.REQ_PAGES_ID: {
      const expected = data.length >= 13 ? 13 + data[12] : 13;
      if (data.length !== expected) {
        throw new WireError(`RP: Req_Page_id with length ${data.length} expecting ${expected}`);
      }
      if (expected === 13) throw new WireError("RP: Req_Page_id with an empty block name");
      return {
        type,
        start: decodeStart(data, "Req_Page_id"),
        len: be32(data, 8),
        name: decodeName(data.subarray(13), "Req_Page_id"),
      };
    }
    default: {
      // RECV_BITMAP (the only type left after checkRpHeader).
      if (data.length < 1 || data[0] === 0) {
        throw new WireError("RP: RECV_BITMAP missing block name");
      }
      const expected = 1 + data[0];
      if (data.length !== expected) {
        throw new WireError(`RP: RECV_BITMAP with length ${data.length} expecting ${expected}`);
      }
      return { type: RpType.RECV_BITMAP, name: decodeName(data.subarray(1), "RECV_BITMAP") };
    }
  }
}
