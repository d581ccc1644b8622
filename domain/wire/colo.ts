/**
 * COLO's checkpoint exchange on the wire (docs/wire-format.md, "COLO"): after a precopy's EOF
 * (and the destination's SHUT) the same connection carries QEMU's COLOMessage values — from
 * the primary as COLO frames on the main stream (`u32 message, u64 value`), from the
 * secondary as return-path messages of type {@link RP_COLO} with the same 12 bytes. Pure
 * encoders and decoders; each decoder refuses a message the sender's side never sends.
 *
 * @module
 */
import { FRAME_HEADER_SIZE, FrameType, MAX_SMALL_PAYLOAD } from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { RP_HEADER_SIZE } from "./return_path.ts";
import { WireError } from "./wire_error.ts";

/** QEMU's COLOMessage values (qapi/migration.json), plus Ferry's EXIT. */
export const ColoMessage = {
  CHECKPOINT_READY: 0,
  CHECKPOINT_REQUEST: 1,
  CHECKPOINT_REPLY: 2,
  VMSTATE_SEND: 3,
  VMSTATE_SIZE: 4,
  VMSTATE_RECEIVED: 5,
  VMSTATE_LOADED: 6,
  /** Ferry: this side leaves COLO on purpose (value: {@link ColoExitCode}); the peer stops. */
  EXIT: 7,
} as const;

/** One COLOMessage value. */
export type ColoMessageCode = typeof ColoMessage[keyof typeof ColoMessage];

/** Why an EXIT was sent. */
export const ColoExitCode = { REQUEST: 1, ERROR: 2 } as const;

/** The return-path type of a secondary's COLO message (outside QEMU's RP table). */
export const RP_COLO = 0xfe02;

/** A COLO message's body: 4 bytes of message, 8 of value. */
export const COLO_BODY = 12;

const NAMES = Object.fromEntries(Object.entries(ColoMessage).map(([n, v]) => [v, n]));

/** Messages the primary sends; the secondary sends the others. */
const FROM_PRIMARY: ReadonlySet<number> = new Set([
  ColoMessage.CHECKPOINT_REQUEST,
  ColoMessage.VMSTATE_SEND,
  ColoMessage.VMSTATE_SIZE,
  ColoMessage.EXIT,
]);
const FROM_SECONDARY: ReadonlySet<number> = new Set([
  ColoMessage.CHECKPOINT_READY,
  ColoMessage.CHECKPOINT_REPLY,
  ColoMessage.VMSTATE_RECEIVED,
  ColoMessage.VMSTATE_LOADED,
  ColoMessage.EXIT,
]);

/** A decoded COLO message. */
export interface ColoMsg {
  msg: ColoMessageCode;
  value: number;
}

/** A message's name (`CHECKPOINT_REQUEST`), or its number. */
export function coloName(msg: number): string {
  return NAMES[msg] ?? `COLO message ${msg}`;
}

function putBody(v: DataView, off: number, msg: number, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`bad COLO value ${value}`);
  v.setUint32(off, msg);
  v.setBigUint64(off + 4, BigInt(value));
}

function body(b: Uint8Array, from: ReadonlySet<number>, who: string): ColoMsg {
  if (b.length !== COLO_BODY) {
    throw new WireError(`COLO: a message of ${b.length} bytes, expected ${COLO_BODY}`);
  }
  const v = new DataView(b.buffer, b.byteOffset, COLO_BODY);
  const msg = v.getUint32(0);
  if (!from.has(msg)) throw new WireError(`COLO: ${coloName(msg)} is not sent by the ${who}`);
  const value = v.getBigUint64(4);
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new WireError("COLO: value too large");
  return { msg: msg as ColoMessageCode, value: Number(value) };
}

/** The primary's COLO frame. */
export function encodeColoFrame(msg: ColoMessageCode, value = 0): Uint8Array<ArrayBuffer> {
  if (!FROM_PRIMARY.has(msg)) throw new RangeError(`${coloName(msg)} is not the primary's`);
  const b = new Uint8Array(FRAME_HEADER_SIZE + COLO_BODY);
  const v = new DataView(b.buffer);
  putFrameHeader(v, 0, FrameType.COLO, COLO_BODY);
  putBody(v, FRAME_HEADER_SIZE, msg, value);
  return b;
}

/** A COLO frame's payload, from the primary. */
export function decodeColoFrame(payload: Uint8Array): ColoMsg {
  return body(payload, FROM_PRIMARY, "primary");
}

/** The secondary's COLO message on the return path. */
export function encodeColoReply(msg: ColoMessageCode, value = 0): Uint8Array<ArrayBuffer> {
  if (!FROM_SECONDARY.has(msg)) throw new RangeError(`${coloName(msg)} is not the secondary's`);
  const b = new Uint8Array(RP_HEADER_SIZE + COLO_BODY);
  const v = new DataView(b.buffer);
  v.setUint16(0, RP_COLO);
  v.setUint16(2, COLO_BODY);
  putBody(v, RP_HEADER_SIZE, msg, value);
  return b;
}

/** A return-path COLO message's data, from the secondary. */
export function decodeColoReply(data: Uint8Array): ColoMsg {
  return body(data, FROM_SECONDARY, "secondary");
}

/** The return-path type of the secondary's output record (outside QEMU's RP table). */
export const RP_COLO_OUTPUT = 0xfe03;

/** Bytes of a record's digest (SHA-256). */
export const OUTPUT_DIGEST_BYTES = 32;

/** RP_COLO_OUTPUT's data: `u64 seq` and the SHA-256 of the record's bytes. */
export const COLO_OUTPUT_BODY = 8 + OUTPUT_DIGEST_BYTES;

/** One of the secondary's output records, as the primary compares it. */
export interface ColoOutput {
  seq: number;
  digest: Uint8Array;
}

/** The secondary's output record `seq` (its bytes' SHA-256 `digest`) on the return path. */
export function encodeColoOutput(seq: number, digest: Uint8Array): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(seq) || seq < 1) throw new RangeError(`bad output seq ${seq}`);
  if (digest.length !== OUTPUT_DIGEST_BYTES) {
    throw new RangeError(`an output digest of ${digest.length} bytes`);
  }
  const b = new Uint8Array(RP_HEADER_SIZE + COLO_OUTPUT_BODY);
  const v = new DataView(b.buffer);
  v.setUint16(0, RP_COLO_OUTPUT);
  v.setUint16(2, COLO_OUTPUT_BODY);
  v.setBigUint64(RP_HEADER_SIZE, BigInt(seq));
  b.set(digest, RP_HEADER_SIZE + 8);
  return b;
}

/** RP_COLO_OUTPUT's data. */
export function decodeColoOutput(data: Uint8Array): ColoOutput {
  if (data.length !== COLO_OUTPUT_BODY) {
    throw new WireError(
      `COLO: an output record of ${data.length} bytes, expected ${COLO_OUTPUT_BODY}`,
    );
  }
  const seq = new DataView(data.buffer, data.byteOffset, 8).getBigUint64(0);
  if (seq < 1n || seq > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new WireError(`COLO: output seq ${seq} out of range`);
  }
  return { seq: Number(seq), digest: data.slice(8) };
}

/**
 * COLO_INPUT frames carrying `bytes` (input the primary's guest was given, for the secondary's
 * guest to read too), at most 64 KiB each; none for no bytes.
 */
export function encodeColoInput(bytes: Uint8Array): Uint8Array<ArrayBuffer>[] {
  const frames: Uint8Array<ArrayBuffer>[] = [];
  for (let at = 0; at < bytes.length; at += MAX_SMALL_PAYLOAD) {
    const part = bytes.subarray(at, Math.min(bytes.length, at + MAX_SMALL_PAYLOAD));
    const f = new Uint8Array(FRAME_HEADER_SIZE + part.length);
    putFrameHeader(new DataView(f.buffer), 0, FrameType.COLO_INPUT, part.length);
    f.set(part, FRAME_HEADER_SIZE);
    frames.push(f);
  }
  return frames;
}
