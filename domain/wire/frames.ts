/**
 * Ferry migration stream v2: constants, the frame table, the stream header and the frame
 * header. All integers on the wire are big-endian. The section records (START, END, FULL)
 * are in sections.ts.
 *
 * @module
 */

import { WireError } from "./wire_error.ts";

/** Size of the stream header: magic "FERY", u16 version, u16 flags. */
export const STREAM_HEADER_SIZE = 8;
/** Size of every frame header: u8 type, u32 payload length. */
export const FRAME_HEADER_SIZE = 5;
/** Size of the run header at the start of a ZERO_RUN / PAGE_RUN payload. */
export const RUN_HEADER_SIZE = 10;
/** Size of a SECTION_END payload: u8 kind, u32 pass, u32 section id. */
export const SECTION_END_SIZE = 9;
/** Size of a SECTION_START payload before the section's name (kind, pass, id, version, len). */
export const SECTION_START_FIXED = 14;
/** Size of a SECTION_FULL payload before the section's name (id, version, name length). */
export const SECTION_FULL_FIXED = 9;
/** Longest section name (QEMU's idstr), in bytes. */
export const MAX_SECTION_NAME = 255;
/**
 * Most pages one PAGE_RUN may carry: 1024 (4 MiB of 4 KiB pages; version 2 allowed 256). The
 * source writes a run's pages straight from guest RAM after its header, so each run costs a
 * header write and its own socket writes; with a loopback sender's 1 MiB send buffer
 * (adapters/channels/send_buffer.ts) fewer, larger runs move a 1 GiB random guest at 4.6–5.1
 * GB/s against 4.0–4.6 with 256-page runs (2026-12-07, 8 alternating pairs; 4096-page runs
 * 4.7–4.9).
 */
export const MAX_RUN_PAGES = 1024;
/** "FERY" read as a big-endian u32. */
export const STREAM_MAGIC = 0x46455259;
/**
 * The only stream version this code speaks (version 1 had no section ids; version 2 carried at
 * most 256 pages per PAGE_RUN).
 */
export const STREAM_VERSION = 3;
/** Largest payload of CONFIG frames and of SECTION_FULL bodies (64 KiB). */
export const MAX_SMALL_PAYLOAD = 65536;
/** Smallest page size a CONFIG may announce. */
export const MIN_PAGE_SIZE = 1024;
/** Largest page size a CONFIG may announce (bounds PAGE_RUN lengths). */
export const MAX_PAGE_SIZE = 65536;
/** Most RAM blocks a CONFIG may announce. */
export const MAX_BLOCKS = 1024;
/** Largest RAM block size a CONFIG may announce (2^48 bytes). */
export const MAX_BLOCK_SIZE = 2 ** 48;

/** Frame type codes of version 2. */
export const FrameType = {
  CONFIG: 0x01,
  SECTION_START: 0x02,
  SECTION_END: 0x03,
  ZERO_RUN: 0x04,
  PAGE_RUN: 0x05,
  /** A section sent whole (the device state); version 1's DEVICE frame. */
  SECTION_FULL: 0x06,
  GLOBAL_STATE: 0x07,
  EOF: 0x08,
  /** The source cancelled: nothing follows (beyond QEMU; see docs/wire-format.md). */
  CANCEL: 0x09,
  POSTCOPY_ADVISE: 0x10,
  POSTCOPY_LISTEN: 0x11,
  POSTCOPY_RUN: 0x12,
  PACKAGED: 0x13,
  POSTCOPY_DISCARD: 0x14,
  PING: 0x15,
  OPEN_RETURN_PATH: 0x16,
  POSTCOPY_RESUME: 0x17,
  RECV_BITMAP: 0x18,
  XBZRLE_PAGE: 0x20,
  COMPRESSED_PAGE: 0x21,
  /** A resizable RAM block's used size grew (ram_used.ts). */
  RAM_USED: 0x22,
  /** The guest's module (a WebAssembly guest's SHA-256), in RAM's setup (ram_used.ts). */
  GUEST_MODULE: 0x23,
  MULTIFD_SYNC: 0x30,
  MULTIFD_HELLO: 0x31,
  MULTIFD_SETUP: 0x32,
  /** The destination's answer to a HELLO that allows it: go on here, or reconnect elsewhere. */
  MULTIFD_REDIRECT: 0x33,
  /** A redirected page channel's first frame on its new connection: the redirect's token. */
  MULTIFD_JOIN: 0x34,
  /** The receive thread's answer to a JOIN it took: the redirect's answer value. */
  MULTIFD_JOINED: 0x35,
  /** A COLO message from the primary (docs/wire-format.md, "COLO"). */
  COLO: 0x50,
  /** The source runs COLO after this precopy (QEMU's MIG_CMD_ENABLE_COLO). */
  COLO_ENABLE: 0x51,
  /** The primary's output records a checkpoint releases (docs/wire-format.md, "COLO"). */
  COLO_RECORDS: 0x52,
  /** Input the primary's guest took, for the secondary's (docs/wire-format.md, "COLO"). */
  COLO_INPUT: 0x53,
  /** The disk section's drive list (docs/wire-format.md, "Disk records"). */
  DISK_CONFIG: 0x60,
  /** A run of a drive's bytes at an offset. */
  DISK_DATA: 0x61,
  /** A run of a drive's bytes that are all zero (zero-blocks). */
  DISK_ZERO: 0x62,
  /** A run of a drive's named dirty bitmap (the dirty-bitmaps capability). */
  DISK_BITMAP: 0x63,
} as const;

/** Size of the header of DISK_DATA / DISK_ZERO: u16 drive, u64 offset, u32 length. */
export const DISK_HEADER_SIZE = 14;
/**
 * Most bytes one DISK_DATA or DISK_ZERO covers: 16 of the disk's 64 KiB blocks (section
 * version 2; version 1 sent one block per frame). A destination holds one run at a time.
 */
export const MAX_DISK_RUN = 1 << 20;

/** COLO_RECORDS' fixed part: `u64 next, u32 count`. */
export const COLO_RECORDS_FIXED = 12;
/** One record's header in COLO_RECORDS: `u64 seq, u8 stream, u32 length`. */
export const COLO_RECORD_HEADER = 13;
/** Most output records one COLO_RECORDS frame (so one checkpoint) carries. */
export const MAX_COLO_RECORDS = 8192;
/** Most record bytes (their payloads, summed) one COLO_RECORDS frame carries: 8 MiB. */
export const MAX_COLO_RECORD_BYTES = 8 << 20;

/** Largest PACKAGED payload (the postcopy device-state package). */
export const MAX_PACKAGE = 1 << 20;
/** Most ranges one POSTCOPY_DISCARD frame may carry. */
export const MAX_DISCARD_RANGES = 4096;

/** One of the {@link FrameType} codes. */
export type FrameTypeCode = typeof FrameType[keyof typeof FrameType];

/** How a frame's payload length is constrained: exactly `fixed`, or within `min..max`. */
export interface FrameSpec {
  /** Name used in error messages and docs. */
  name: string;
  /** Exact payload length, for fixed-size frames. */
  fixed?: number;
  /** Smallest payload length, for variable frames. */
  min?: number;
  /** Largest payload length, for variable frames. */
  max?: number;
}

/** Largest SECTION_FULL body (64 KiB). */
export const MAX_SECTION_BODY = MAX_SMALL_PAYLOAD;
/** Largest SECTION_FULL payload: its fixed part, the longest name and the largest body. */
export const MAX_SECTION_FULL = SECTION_FULL_FIXED + MAX_SECTION_NAME + MAX_SECTION_BODY;

/** The frame table of version 2, keyed by type code. */
export const FRAMES: Readonly<Record<number, Readonly<FrameSpec>>> = {
  [FrameType.CONFIG]: { name: "CONFIG", min: 6, max: MAX_SMALL_PAYLOAD },
  [FrameType.SECTION_START]: {
    name: "SECTION_START",
    min: SECTION_START_FIXED + 1,
    max: SECTION_START_FIXED + MAX_SECTION_NAME,
  },
  [FrameType.SECTION_END]: { name: "SECTION_END", fixed: SECTION_END_SIZE },
  [FrameType.ZERO_RUN]: { name: "ZERO_RUN", fixed: RUN_HEADER_SIZE },
  [FrameType.PAGE_RUN]: {
    name: "PAGE_RUN",
    min: RUN_HEADER_SIZE + MIN_PAGE_SIZE,
    max: RUN_HEADER_SIZE + MAX_RUN_PAGES * MAX_PAGE_SIZE,
  },
  [FrameType.SECTION_FULL]: {
    name: "SECTION_FULL",
    min: SECTION_FULL_FIXED + 1,
    max: MAX_SECTION_FULL,
  },
  [FrameType.GLOBAL_STATE]: { name: "GLOBAL_STATE", min: 1, max: 64 },
  [FrameType.EOF]: { name: "EOF", fixed: 0 },
  [FrameType.CANCEL]: { name: "CANCEL", fixed: 0 },
  [FrameType.POSTCOPY_ADVISE]: { name: "POSTCOPY_ADVISE", fixed: 4 },
  [FrameType.POSTCOPY_LISTEN]: { name: "POSTCOPY_LISTEN", fixed: 0 },
  [FrameType.POSTCOPY_RUN]: { name: "POSTCOPY_RUN", fixed: 0 },
  [FrameType.PACKAGED]: { name: "PACKAGED", min: FRAME_HEADER_SIZE, max: MAX_PACKAGE },
  [FrameType.POSTCOPY_DISCARD]: {
    name: "POSTCOPY_DISCARD",
    min: 12,
    max: 4 + 8 * MAX_DISCARD_RANGES,
  },
  [FrameType.PING]: { name: "PING", fixed: 4 },
  [FrameType.OPEN_RETURN_PATH]: { name: "OPEN_RETURN_PATH", fixed: 0 },
  [FrameType.POSTCOPY_RESUME]: { name: "POSTCOPY_RESUME", fixed: 0 },
  [FrameType.RECV_BITMAP]: { name: "RECV_BITMAP", min: 2, max: 256 },
  // One encoded page is read whole through the reader's buffer (readPayload): at most
  // 64 KiB, like CONFIG (a 4 KiB page encodes to at most 6 + 4673 bytes).
  [FrameType.XBZRLE_PAGE]: { name: "XBZRLE_PAGE", min: 7, max: MAX_SMALL_PAYLOAD },
  [FrameType.COMPRESSED_PAGE]: { name: "COMPRESSED_PAGE", min: 7, max: MAX_SMALL_PAYLOAD },
  // u16 block, u64 used bytes.
  [FrameType.RAM_USED]: { name: "RAM_USED", fixed: 10 },
  // The module's SHA-256.
  [FrameType.GUEST_MODULE]: { name: "GUEST_MODULE", fixed: 32 },
  [FrameType.MULTIFD_SYNC]: { name: "MULTIFD_SYNC", fixed: 4 },
  // Version 1 of HELLO has no flags byte.
  [FrameType.MULTIFD_HELLO]: { name: "MULTIFD_HELLO", min: 20, max: 21 },
  [FrameType.MULTIFD_SETUP]: { name: "MULTIFD_SETUP", fixed: 20 },
  // token[16], answer[16], then the address (UTF-8, empty: stay on this connection).
  [FrameType.MULTIFD_REDIRECT]: { name: "MULTIFD_REDIRECT", min: 32, max: 32 + 255 },
  [FrameType.MULTIFD_JOIN]: { name: "MULTIFD_JOIN", fixed: 16 },
  [FrameType.MULTIFD_JOINED]: { name: "MULTIFD_JOINED", fixed: 16 },
  [FrameType.COLO]: { name: "COLO", fixed: 12 },
  [FrameType.COLO_ENABLE]: { name: "COLO_ENABLE", fixed: 0 },
  [FrameType.COLO_RECORDS]: {
    name: "COLO_RECORDS",
    min: COLO_RECORDS_FIXED,
    max: COLO_RECORDS_FIXED + MAX_COLO_RECORDS * COLO_RECORD_HEADER + MAX_COLO_RECORD_BYTES,
  },
  // The input bytes themselves.
  [FrameType.COLO_INPUT]: { name: "COLO_INPUT", min: 1, max: MAX_SMALL_PAYLOAD },
  [FrameType.DISK_CONFIG]: { name: "DISK_CONFIG", min: 2, max: MAX_SMALL_PAYLOAD },
  [FrameType.DISK_DATA]: {
    name: "DISK_DATA",
    min: DISK_HEADER_SIZE + 1,
    max: DISK_HEADER_SIZE + MAX_DISK_RUN,
  },
  [FrameType.DISK_ZERO]: { name: "DISK_ZERO", fixed: DISK_HEADER_SIZE },
  // u16 drive, u8 len, name (1..64), u32 first, u32 count, the bits (1..32 KiB).
  [FrameType.DISK_BITMAP]: { name: "DISK_BITMAP", min: 13, max: 2 + 1 + 64 + 8 + 32768 },
};

/** Codes reserved for later versions; version 2 decoders reject them as unknown. */
export const RESERVED_FRAMES: Readonly<Record<number, string>> = {
  0x40: "DIRTY_BITMAPS",
};

/** A decoded frame header. */
export interface FrameHeader {
  /** Frame type code (a {@link FrameType} value once decoded). */
  type: number;
  /** Payload length in bytes (excluding the 5-byte header). */
  length: number;
}

/** Formats a byte as `0x2a`. */
export function hex8(n: number): string {
  return "0x" + n.toString(16).padStart(2, "0");
}

/** The table name of a frame type, or its hex code when unknown. */
export function frameName(type: number): string {
  return FRAMES[type]?.name ?? hex8(type);
}

/** Magic of a multifd page channel's stream ("FERM"). */
export const MULTIFD_MAGIC = 0x4645524d;

/** Which kind of stream a header opens: the main channel or a multifd page channel. */
export type StreamKind = "main" | "multifd";

/** Encodes the 8-byte stream header (magic, version 2, flags 0). */
export function encodeStreamHeader(kind: StreamKind = "main"): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(STREAM_HEADER_SIZE);
  const v = new DataView(b.buffer);
  v.setUint32(0, kind === "main" ? STREAM_MAGIC : MULTIFD_MAGIC);
  v.setUint16(4, STREAM_VERSION);
  v.setUint16(6, 0);
  return b;
}

/**
 * Checks an 8-byte stream header and says which kind it opens; throws {@link WireError} on
 * bad magic, version or flags.
 */
export function decodeStreamHeader(b: Uint8Array): StreamKind {
  if (b.length < STREAM_HEADER_SIZE) {
    throw new WireError(
      `migration stream truncated: stream header has ${b.length} of ${STREAM_HEADER_SIZE} bytes`,
    );
  }
  const magic = be32(b, 0);
  if (magic !== STREAM_MAGIC && magic !== MULTIFD_MAGIC) {
    throw new WireError(
      `not a Ferry migration stream (magic 0x${magic.toString(16).padStart(8, "0")}, ` +
        `expected 0x${STREAM_MAGIC.toString(16)} "FERY")`,
    );
  }
  const version = be16(b, 4);
  if (version !== STREAM_VERSION) {
    throw new WireError(
      `unsupported migration stream version ${version} (this side speaks version ${STREAM_VERSION})`,
    );
  }
  const flags = be16(b, 6);
  if (flags !== 0) {
    throw new WireError(
      `migration stream header has reserved flags set (0x${flags.toString(16).padStart(4, "0")})`,
    );
  }
  return magic === STREAM_MAGIC ? "main" : "multifd";
}

/**
 * Decodes and checks the 5-byte frame header at `b[off]`: rejects unknown types, fixed-length
 * mismatches and variable lengths outside the table's bounds (before any payload is read).
 */
export function decodeFrameHeader(b: Uint8Array, off = 0): FrameHeader {
  if (b.length - off < FRAME_HEADER_SIZE) {
    throw new WireError(
      `migration stream truncated: frame header has ${Math.max(0, b.length - off)} of ` +
        `${FRAME_HEADER_SIZE} bytes`,
    );
  }
  const type = b[off];
  const length = be32(b, off + 1);
  const spec: Readonly<FrameSpec> | undefined = FRAMES[type];
  if (spec === undefined) {
    const reserved = RESERVED_FRAMES[type];
    throw new WireError(
      `unknown frame type ${hex8(type)}` +
        (reserved ? ` (reserved for ${reserved} in a later stream version)` : ""),
    );
  }
  if (spec.fixed !== undefined) {
    if (length !== spec.fixed) {
      throw new WireError(
        `frame ${spec.name} has payload length ${length}, expected ${spec.fixed}`,
      );
    }
  } else if (length > spec.max!) {
    throw new WireError(
      `frame ${spec.name} payload length ${length} exceeds the maximum ${spec.max}`,
    );
  } else if (length < spec.min!) {
    throw new WireError(
      `frame ${spec.name} payload length ${length} is below the minimum ${spec.min}`,
    );
  }
  return { type, length };
}

/** Reads a big-endian u16 at `b[o]` (no bounds check). */
export function be16(b: Uint8Array, o: number): number {
  return (b[o] << 8) | b[o + 1];
}

/** Reads a big-endian u32 at `b[o]` (no bounds check). */
export function be32(b: Uint8Array, o: number): number {
  return ((b[o] << 24) | (b[o + 1] << 16) | (b[o + 2] << 8) | b[o + 3]) >>> 0;
}
