/**
 * Multifd frames: the main channel announces the page channels (MULTIFD_SETUP: migration
 * uuid, channel count, page count); each page channel opens with a "FERM" stream header
 * and MULTIFD_HELLO (uuid, its id, the count) so a stray or duplicate connection is
 * refused; MULTIFD_SYNC(pass) marks the end of a dirty pass on every channel (a barrier).
 *
 * @module
 */
import { FRAME_HEADER_SIZE, FrameType } from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

/** A channel's identity, or the main channel's announcement. */
export interface MultifdHello {
  /** 16 bytes, lowercase hex when printed. */
  uuid: Uint8Array;
  /** The channel's id (HELLO) or the page count per packet (SETUP). */
  id: number;
  /** How many page channels the migration uses. */
  channels: number;
}

function encode20(type: number, h: MultifdHello): Uint8Array<ArrayBuffer> {
  if (h.uuid.length !== 16) throw new RangeError("uuid must be 16 bytes");
  const b = new Uint8Array(FRAME_HEADER_SIZE + 20);
  const v = new DataView(b.buffer);
  putFrameHeader(v, 0, type, 20);
  b.set(h.uuid, FRAME_HEADER_SIZE);
  v.setUint16(FRAME_HEADER_SIZE + 16, h.id);
  v.setUint16(FRAME_HEADER_SIZE + 18, h.channels);
  return b;
}

function decode20(payload: Uint8Array, what: string): MultifdHello {
  if (payload.length !== 20) throw new WireError(`${what} payload of ${payload.length} bytes`);
  const v = new DataView(payload.buffer, payload.byteOffset, 20);
  return { uuid: payload.slice(0, 16), id: v.getUint16(16), channels: v.getUint16(18) };
}

/** A page channel's first frame: which migration, which channel. */
export function encodeHello(h: MultifdHello): Uint8Array<ArrayBuffer> {
  return encode20(FrameType.MULTIFD_HELLO, h);
}

/** Decodes MULTIFD_HELLO; the id must be below the channel count (1..255). */
export function decodeHello(payload: Uint8Array): MultifdHello {
  const h = decode20(payload, "MULTIFD_HELLO");
  if (h.channels < 1 || h.channels > 255 || h.id >= h.channels) {
    throw new WireError(`multifd channel ${h.id} of ${h.channels} is out of range`);
  }
  return h;
}

/** The main channel's announcement: uuid, page count per packet (`id`), channel count. */
export function encodeSetup(
  uuid: Uint8Array,
  pageCount: number,
  channels: number,
): Uint8Array<ArrayBuffer> {
  return encode20(FrameType.MULTIFD_SETUP, { uuid, id: pageCount, channels });
}

/** Decodes MULTIFD_SETUP into {uuid, channels, pageCount}. */
export function decodeSetup(
  payload: Uint8Array,
): { uuid: Uint8Array; channels: number; pageCount: number } {
  const h = decode20(payload, "MULTIFD_SETUP");
  if (h.channels < 1 || h.channels > 255) {
    throw new WireError(`multifd with ${h.channels} channels`);
  }
  if (h.id < 1 || h.id > 10000) throw new WireError(`multifd page count ${h.id} out of range`);
  return { uuid: h.uuid, channels: h.channels, pageCount: h.id };
}

/** Formats a uuid for messages. */
export function uuidText(u: Uint8Array): string {
  return Array.from(u, (x) => x.toString(16).padStart(2, "0")).join("");
}
