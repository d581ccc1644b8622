/**
 * Section records of the migration stream v2 (docs/wire-format.md, "Section records"), in
 * QEMU's shape: SECTION_START opens a section's record (kind, pass, section id, the
 * section's version and name), the section's own frames follow, SECTION_END (kind, pass,
 * section id) closes it; SECTION_FULL carries a section sent whole (id, version, name,
 * body). Decoders check every length the peer sent before reading what it covers.
 *
 * @module
 */
import {
  be32,
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_SECTION_BODY,
  SECTION_END_SIZE,
  SECTION_FULL_FIXED,
  SECTION_START_FIXED,
} from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

/** A section's identity on the wire: its id, its name (QEMU's idstr) and format version. */
export interface SectionIdent {
  id: number;
  name: string;
  version: number;
}

/** A decoded SECTION_END (and the kind/pass/id part of a SECTION_START). */
export interface WireSection {
  /** 1 setup, 2 iterate, 3 complete. */
  kind: number;
  /** The source's pass counter. */
  pass: number;
  /** The section id. */
  id: number;
}

/** A decoded SECTION_START: the record and the section's name and version. */
export interface WireSectionStart extends WireSection {
  name: string;
  version: number;
}

/** A decoded SECTION_FULL: the section's identity and its body (a view of the payload). */
export interface WireSectionFull extends SectionIdent {
  body: Uint8Array;
}

/** Kinds of section record, carried in SECTION_START / SECTION_END. */
export const SectionKind = {
  SETUP: 1,
  ITERATE: 2,
  COMPLETE: 3,
} as const;

/** One of the {@link SectionKind} codes. */
export type SectionKindCode = typeof SectionKind[keyof typeof SectionKind];

/** Section names are printable ASCII, 1..255 bytes. */
const NAME = /^[\x21-\x7e]{1,255}$/;

function checkIdent(s: SectionIdent): void {
  if (!NAME.test(s.name)) {
    throw new RangeError(`section name '${s.name}' is not 1..255 printable ASCII characters`);
  }
  checkU32("section id", s.id);
  checkU32("section version", s.version);
}

function checkU32(what: string, v: number): void {
  if (!Number.isInteger(v) || v < 0 || v > 0xffffffff) {
    throw new RangeError(`${what} ${v} is not a u32`);
  }
}

function checkKind(kind: number): void {
  if (!Number.isInteger(kind) || kind < 1 || kind > 3) {
    throw new RangeError(`section kind ${kind} is not in 1..3`);
  }
}

function putName(b: Uint8Array, off: number, name: string): void {
  b[off] = name.length;
  for (let i = 0; i < name.length; i++) b[off + 1 + i] = name.charCodeAt(i);
}

/** Encodes a whole SECTION_START frame: kind, pass, then the section's id, version, name. */
export function encodeSectionStart(
  kind: number,
  pass: number,
  s: SectionIdent,
): Uint8Array<ArrayBuffer> {
  checkKind(kind);
  checkU32("section pass", pass);
  checkIdent(s);
  const length = SECTION_START_FIXED + s.name.length;
  const b = new Uint8Array(FRAME_HEADER_SIZE + length);
  const v = new DataView(b.buffer);
  const o = putFrameHeader(v, 0, FrameType.SECTION_START, length);
  v.setUint8(o, kind);
  v.setUint32(o + 1, pass);
  v.setUint32(o + 5, s.id);
  v.setUint32(o + 9, s.version);
  putName(b, o + 13, s.name);
  return b;
}

/** Encodes a whole SECTION_END frame (14 bytes): kind, pass, section id. */
export function encodeSectionEnd(kind: number, pass: number, id: number): Uint8Array<ArrayBuffer> {
  checkKind(kind);
  checkU32("section pass", pass);
  checkU32("section id", id);
  const b = new Uint8Array(FRAME_HEADER_SIZE + SECTION_END_SIZE);
  const v = new DataView(b.buffer);
  const o = putFrameHeader(v, 0, FrameType.SECTION_END, SECTION_END_SIZE);
  v.setUint8(o, kind);
  v.setUint32(o + 1, pass);
  v.setUint32(o + 5, id);
  return b;
}

/** Encodes a whole SECTION_FULL frame: the section's id, version, name, then `body`. */
export function encodeSectionFull(s: SectionIdent, body: Uint8Array): Uint8Array<ArrayBuffer> {
  checkIdent(s);
  if (body.length > MAX_SECTION_BODY) {
    throw new RangeError(`section '${s.name}' body of ${body.length} bytes exceeds 65536`);
  }
  const length = SECTION_FULL_FIXED + s.name.length + body.length;
  const b = new Uint8Array(FRAME_HEADER_SIZE + length);
  const v = new DataView(b.buffer);
  const o = putFrameHeader(v, 0, FrameType.SECTION_FULL, length);
  v.setUint32(o, s.id);
  v.setUint32(o + 4, s.version);
  putName(b, o + 8, s.name);
  b.set(body, o + SECTION_FULL_FIXED + s.name.length);
  return b;
}

function decodeKind(kind: number): number {
  if (kind < 1 || kind > 3) throw new WireError(`unknown section kind ${kind}`);
  return kind;
}

/** Reads a name of `len` bytes at `payload[off]`; `what` names the frame in errors. */
function decodeName(payload: Uint8Array, off: number, len: number, what: string): string {
  if (len === 0) throw new WireError(`${what} has an empty section name`);
  let name = "";
  for (let i = 0; i < len; i++) {
    const c = payload[off + i];
    if (c < 0x21 || c > 0x7e) {
      throw new WireError(`${what} section name has a non-printable byte 0x${c.toString(16)}`);
    }
    name += String.fromCharCode(c);
  }
  return name;
}

/** Decodes a SECTION_START payload; its length must be exactly 14 + the name's length. */
export function decodeSectionStart(payload: Uint8Array): WireSectionStart {
  if (payload.length < SECTION_START_FIXED + 1) {
    throw new WireError(
      `SECTION_START payload is ${payload.length} bytes, at least ${SECTION_START_FIXED + 1}`,
    );
  }
  const len = payload[13];
  if (payload.length !== SECTION_START_FIXED + len) {
    throw new WireError(
      `SECTION_START payload is ${payload.length} bytes, expected ${
        SECTION_START_FIXED + len
      } for a ${len}-byte name`,
    );
  }
  return {
    kind: decodeKind(payload[0]),
    pass: be32(payload, 1),
    id: be32(payload, 5),
    version: be32(payload, 9),
    name: decodeName(payload, SECTION_START_FIXED, len, "SECTION_START"),
  };
}

/** Decodes a SECTION_END payload (exactly 9 bytes). */
export function decodeSectionEnd(payload: Uint8Array): WireSection {
  if (payload.length !== SECTION_END_SIZE) {
    throw new WireError(`SECTION_END payload is ${payload.length} bytes, expected 9`);
  }
  return { kind: decodeKind(payload[0]), pass: be32(payload, 1), id: be32(payload, 5) };
}

/**
 * Decodes a SECTION_FULL payload: id, version, name, then a body of at most 64 KiB (the
 * rest of the payload; a view, not a copy).
 */
export function decodeSectionFull(payload: Uint8Array): WireSectionFull {
  if (payload.length < SECTION_FULL_FIXED + 1) {
    throw new WireError(
      `SECTION_FULL payload is ${payload.length} bytes, at least ${SECTION_FULL_FIXED + 1}`,
    );
  }
  const len = payload[8];
  const bodyAt = SECTION_FULL_FIXED + len;
  if (payload.length < bodyAt) {
    throw new WireError(
      `SECTION_FULL payload is ${payload.length} bytes, shorter than its ${len}-byte name`,
    );
  }
  const name = decodeName(payload, SECTION_FULL_FIXED, len, "SECTION_FULL");
  const body = payload.subarray(bodyAt);
  if (body.length > MAX_SECTION_BODY) {
    throw new WireError(
      `SECTION_FULL section '${name}' body of ${body.length} bytes exceeds ${MAX_SECTION_BODY}`,
    );
  }
  return { id: be32(payload, 0), version: be32(payload, 4), name, body };
}
