/**
 * Multifd frames: the main channel announces the page channels (MULTIFD_SETUP: migration
 * uuid, channel count, page count); each page channel opens with a "FERM" stream header
 * and MULTIFD_HELLO (uuid, its id, the count) so a stray or duplicate connection is
 * refused; MULTIFD_SYNC(pass) marks the end of a dirty pass on every channel (a barrier).
 *
 * A HELLO may allow a redirect (flags bit 0): the destination then answers on the same
 * connection with MULTIFD_REDIRECT — an empty address (go on here) or the address of one of
 * its receive threads with a one-time token and an answer value — and a redirected channel
 * opens its new connection with the "FERM" header and MULTIFD_JOIN(token); the thread that
 * takes it says MULTIFD_JOINED(answer), which only the destination knows, before any page
 * goes. So each page channel can be read by a thread of its own, as QEMU's multifd receive
 * threads do (Deno cannot move an accepted socket between Workers).
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
  /** HELLO only: the source follows a MULTIFD_REDIRECT answer (flags bit 0). */
  redirectable?: boolean;
}

/** HELLO flags: bit 0, the source reads a MULTIFD_REDIRECT answer and follows it. */
const HELLO_REDIRECTABLE = 1;
/** Token of a redirect (random, one use). */
export const JOIN_TOKEN_BYTES = 16;
/** Longest redirect address (UTF-8 bytes). */
export const MAX_REDIRECT_ADDRESS = 255;

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

function decode20(payload: Uint8Array, what: string, most = 20): MultifdHello {
  if (payload.length < 20 || payload.length > most) {
    throw new WireError(`${what} payload of ${payload.length} bytes`);
  }
  const v = new DataView(payload.buffer, payload.byteOffset, 20);
  return { uuid: payload.slice(0, 16), id: v.getUint16(16), channels: v.getUint16(18) };
}

/**
 * A page channel's first frame: which migration, which channel; with `redirectable`, a
 * flags byte that allows a redirect.
 */
export function encodeHello(h: MultifdHello): Uint8Array<ArrayBuffer> {
  const b = encode20(FrameType.MULTIFD_HELLO, h);
  if (!h.redirectable) return b;
  const out = new Uint8Array(b.length + 1);
  out.set(b);
  new DataView(out.buffer).setUint32(1, 21); // the frame's length
  out[b.length] = HELLO_REDIRECTABLE;
  return out;
}

/**
 * Decodes MULTIFD_HELLO (20 bytes, or 21 with flags: only bit 0 is known); the id must be
 * below the channel count (1..255).
 */
export function decodeHello(payload: Uint8Array): MultifdHello {
  const h = decode20(payload, "MULTIFD_HELLO", 21);
  if (h.channels < 1 || h.channels > 255 || h.id >= h.channels) {
    throw new WireError(`multifd channel ${h.id} of ${h.channels} is out of range`);
  }
  if (payload.length === 21) {
    if (payload[20] & ~HELLO_REDIRECTABLE) {
      throw new WireError(`MULTIFD_HELLO with unknown flags 0x${payload[20].toString(16)}`);
    }
    h.redirectable = (payload[20] & HELLO_REDIRECTABLE) !== 0;
  }
  return h;
}

/**
 * A redirect: where the channel goes on (empty: this connection), the one-time token it joins
 * with there, and the answer the receive thread gives back (proof that it is the destination's).
 */
export interface MultifdRedirect {
  token: Uint8Array;
  answer: Uint8Array;
  address: string;
}

/** The token and answer of a "stay" (unused: zeros). */
const NO_TOKEN = new Uint8Array(JOIN_TOKEN_BYTES);

/** The destination's answer to a redirectable HELLO. */
export function encodeRedirect(r: MultifdRedirect): Uint8Array<ArrayBuffer> {
  if (r.token.length !== JOIN_TOKEN_BYTES || r.answer.length !== JOIN_TOKEN_BYTES) {
    throw new RangeError("token and answer must be 16 bytes each");
  }
  const a = new TextEncoder().encode(r.address);
  if (a.length > MAX_REDIRECT_ADDRESS) throw new RangeError("redirect address too long");
  const fixed = 2 * JOIN_TOKEN_BYTES;
  const b = new Uint8Array(FRAME_HEADER_SIZE + fixed + a.length);
  putFrameHeader(new DataView(b.buffer), 0, FrameType.MULTIFD_REDIRECT, fixed + a.length);
  b.set(r.token, FRAME_HEADER_SIZE);
  b.set(r.answer, FRAME_HEADER_SIZE + JOIN_TOKEN_BYTES);
  b.set(a, FRAME_HEADER_SIZE + fixed);
  return b;
}

/** The answer that keeps a channel on its connection. */
export function encodeStay(): Uint8Array<ArrayBuffer> {
  return encodeRedirect({ token: NO_TOKEN, answer: NO_TOKEN, address: "" });
}

/** Decodes MULTIFD_REDIRECT's payload (the address must be UTF-8). */
export function decodeRedirect(payload: Uint8Array): MultifdRedirect {
  const fixed = 2 * JOIN_TOKEN_BYTES;
  if (payload.length < fixed || payload.length > fixed + MAX_REDIRECT_ADDRESS) {
    throw new WireError(`MULTIFD_REDIRECT payload of ${payload.length} bytes`);
  }
  let address: string;
  try {
    address = new TextDecoder("utf-8", { fatal: true }).decode(payload.subarray(fixed));
  } catch {
    throw new WireError("MULTIFD_REDIRECT address is not UTF-8");
  }
  return {
    token: payload.slice(0, JOIN_TOKEN_BYTES),
    answer: payload.slice(JOIN_TOKEN_BYTES, fixed),
    address,
  };
}

function token16(type: number, token: Uint8Array): Uint8Array<ArrayBuffer> {
  if (token.length !== JOIN_TOKEN_BYTES) throw new RangeError("token must be 16 bytes");
  const b = new Uint8Array(FRAME_HEADER_SIZE + JOIN_TOKEN_BYTES);
  putFrameHeader(new DataView(b.buffer), 0, type, JOIN_TOKEN_BYTES);
  b.set(token, FRAME_HEADER_SIZE);
  return b;
}

function decode16(payload: Uint8Array, what: string): Uint8Array {
  if (payload.length !== JOIN_TOKEN_BYTES) {
    throw new WireError(`${what} payload of ${payload.length} bytes`);
  }
  return payload.slice();
}

/** A redirected channel's first frame on its new connection. */
export function encodeJoin(token: Uint8Array): Uint8Array<ArrayBuffer> {
  return token16(FrameType.MULTIFD_JOIN, token);
}

/** Decodes MULTIFD_JOIN's payload: the token. */
export function decodeJoin(payload: Uint8Array): Uint8Array {
  return decode16(payload, "MULTIFD_JOIN");
}

/** The receive thread's answer to a JOIN it took. */
export function encodeJoined(answer: Uint8Array): Uint8Array<ArrayBuffer> {
  return token16(FrameType.MULTIFD_JOINED, answer);
}

/** Decodes MULTIFD_JOINED's payload: the answer. */
export function decodeJoined(payload: Uint8Array): Uint8Array {
  return decode16(payload, "MULTIFD_JOINED");
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
