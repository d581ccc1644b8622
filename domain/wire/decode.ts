/**
 * Payload decoders for the migration stream. Each takes a frame's payload (the bytes after
 * the 5-byte header), checks every length, count and index the peer sent, and throws
 * {@link WireError} on anything malformed.
 *
 * @module
 */

import {
  be16,
  be32,
  MAX_BLOCK_SIZE,
  MAX_BLOCKS,
  MAX_PAGE_SIZE,
  MAX_RUN_PAGES,
  MIN_PAGE_SIZE,
  RUN_HEADER_SIZE,
} from "./frames.ts";
import { WireError } from "./wire_error.ts";

/** One RAM block as announced by the source's CONFIG frame. */
export interface WireBlock {
  name: string;
  size: number;
}

/** A decoded CONFIG payload. */
export interface WireConfig {
  pageSize: number;
  blocks: WireBlock[];
}

/** A decoded ZERO_RUN payload or PAGE_RUN run header (block-relative pages). */
export interface WireRun {
  block: number;
  firstPage: number;
  count: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes and checks a CONFIG payload: page size, block count, names and sizes. */
export function decodeConfig(payload: Uint8Array): WireConfig {
  const end = payload.length;
  if (end < 6) throw new WireError(`CONFIG payload truncated (${end} bytes)`);
  const pageSize = be32(payload, 0);
  if (pageSize < MIN_PAGE_SIZE || pageSize > MAX_PAGE_SIZE || (pageSize & (pageSize - 1)) !== 0) {
    throw new WireError(`CONFIG page size ${pageSize} is not a power of two in 1024..65536`);
  }
  const count = be16(payload, 4);
  if (count < 1 || count > MAX_BLOCKS) {
    throw new WireError(`CONFIG block count ${count} is not in 1..${MAX_BLOCKS}`);
  }
  const blocks: WireBlock[] = [];
  const seen = new Set<string>();
  let off = 6;
  for (let i = 0; i < count; i++) {
    if (off + 1 > end) throw new WireError(`CONFIG payload truncated in block ${i}`);
    const nameLen = payload[off];
    if (nameLen === 0) throw new WireError(`CONFIG block ${i} has an empty name`);
    if (off + 1 + nameLen + 8 > end) throw new WireError(`CONFIG payload truncated in block ${i}`);
    let name: string;
    try {
      name = utf8.decode(payload.subarray(off + 1, off + 1 + nameLen));
    } catch {
      throw new WireError(`CONFIG block ${i} name is not valid UTF-8`);
    }
    if (seen.has(name)) throw new WireError(`CONFIG names RAM block '${name}' twice`);
    seen.add(name);
    off += 1 + nameLen;
    const size = be32(payload, off) * 2 ** 32 + be32(payload, off + 4);
    off += 8;
    if (size > MAX_BLOCK_SIZE) {
      throw new WireError(`CONFIG RAM block '${name}' size ${size} exceeds 2^48 bytes`);
    }
    if (size % pageSize !== 0) {
      throw new WireError(
        `CONFIG RAM block '${name}' size ${size} is not a multiple of the page size ${pageSize}`,
      );
    }
    blocks.push({ name, size });
  }
  if (off !== end) throw new WireError(`CONFIG payload has ${end - off} trailing bytes`);
  return { pageSize, blocks };
}

function decodeRun(payload: Uint8Array, what: string): WireRun {
  if (payload.length < RUN_HEADER_SIZE) {
    throw new WireError(`${what} header truncated (${payload.length} of ${RUN_HEADER_SIZE} bytes)`);
  }
  const count = be32(payload, 6);
  if (count === 0) throw new WireError(`${what} with a page count of 0`);
  return { block: be16(payload, 0), firstPage: be32(payload, 2), count };
}

/** Decodes a ZERO_RUN payload (exactly 10 bytes); the count must be at least 1. */
export function decodeZeroRun(payload: Uint8Array): WireRun {
  if (payload.length !== RUN_HEADER_SIZE) {
    throw new WireError(`ZERO_RUN payload is ${payload.length} bytes, expected 10`);
  }
  return decodeRun(payload, "ZERO_RUN");
}

/**
 * Decodes the 10-byte run header at the start of a PAGE_RUN payload; count must be
 * 1..MAX_RUN_PAGES.
 */
export function decodeRunHeader(payload: Uint8Array): WireRun {
  const run = decodeRun(payload, "PAGE_RUN");
  if (run.count > MAX_RUN_PAGES) {
    throw new WireError(`PAGE_RUN page count ${run.count} exceeds ${MAX_RUN_PAGES}`);
  }
  return run;
}

/**
 * Checks that a PAGE_RUN frame's payload length is exactly `10 + count * pageSize` (with the
 * page size from the CONFIG frame).
 */
export function checkPageRunLength(length: number, count: number, pageSize: number): void {
  const expected = RUN_HEADER_SIZE + count * pageSize;
  if (length !== expected) {
    throw new WireError(
      `PAGE_RUN of ${count} pages has payload length ${length}, expected ${expected}`,
    );
  }
}

/** Decodes a GLOBAL_STATE payload: u8 length + 1..63 printable ASCII runstate name. */
export function decodeGlobalState(payload: Uint8Array): string {
  if (payload.length < 1) throw new WireError("GLOBAL_STATE payload is empty");
  const len = payload[0];
  if (payload.length !== 1 + len) {
    throw new WireError(
      `GLOBAL_STATE payload is ${payload.length} bytes, expected ${1 + len} for a ${len}-byte name`,
    );
  }
  if (len === 0) throw new WireError("GLOBAL_STATE runstate name is empty");
  let s = "";
  for (let i = 1; i <= len; i++) {
    const c = payload[i];
    if (c < 0x21 || c > 0x7e) {
      throw new WireError(
        `GLOBAL_STATE runstate name has a non-printable byte 0x${c.toString(16)}`,
      );
    }
    s += String.fromCharCode(c);
  }
  return s;
}
