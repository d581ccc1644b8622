/**
 * The vCPU's device state: its registers in a fixed, versioned binary layout that travels in
 * the migration stream. Decoding validates every field against the receiving machine before
 * anything is applied.
 *
 * Layout, version 2: 104 bytes, all integers big-endian (network order), floats IEEE-754
 * binary64 big-endian. Version 1 (96 bytes, without the output seq; flags bit 1 always 0) is
 * still read: its guest's next output record is seq 1.
 *
 * | offset | size | field                                                        |
 * |-------:|-----:|--------------------------------------------------------------|
 * |      0 |    4 | magic `FVCP` (0x46 0x56 0x43 0x50)                           |
 * |      4 |    2 | version, 2                                                   |
 * |      6 |    2 | total length in bytes, 104                                   |
 * |      8 |    1 | workload kind: 0 idle, 1 increment, 2 random                 |
 * |      9 |    1 | flags: bit 0 = booted, bit 1 = clock (random only); others 0 |
 * |     10 |    2 | reserved, 0                                                  |
 * |     12 |    4 | page size, 4096                                              |
 * |     16 |    8 | RAM size in bytes (must equal the receiver's)                |
 * |     24 |    8 | increment range start, bytes (0 unless increment)            |
 * |     32 |    8 | increment range end, bytes (0 unless increment)              |
 * |     40 |    8 | cursor: address of the next page (0 unless increment)        |
 * |     48 |    8 | passes                                                       |
 * |     56 |    8 | pages written                                                |
 * |     64 |    8 | rate, pages per second, float64 (0: idle, unpaced increment) |
 * |     72 |    8 | random hot fraction, float64 (0 unless random)               |
 * |     80 |   16 | xorshift128 state: four uint32, not all zero                 |
 * |     96 |    8 | seq of the next output record, ≥ 1                           |
 *
 * @module
 */

import { PAGE_SIZE } from "./layout.ts";
import { MAX_RANDOM_RATE } from "./workload_spec.ts";
import { WORKLOAD_KINDS, type WorkloadRegs } from "./workload.ts";

/** Magic number at offset 0 ("FVCP"). */
export const DEVICE_STATE_MAGIC = 0x46564350;
/** Current layout version. */
export const DEVICE_STATE_VERSION = 2;
/** Length of a version-2 device state in bytes. */
export const DEVICE_STATE_BYTES = 104;
/** Length of a version-1 device state (read, never written). */
const V1_BYTES = 96;

/** Malformed, hostile or mismatched device state; nothing was changed. */
export class DeviceStateError extends Error {
  /** Builds the error; `message` starts with "device state: ". */
  constructor(detail: string) {
    super(`device state: ${detail}`);
    this.name = "DeviceStateError";
  }
}

/** Encodes registers of a machine with `ramSize` bytes of RAM. */
export function encodeDeviceState(regs: WorkloadRegs, ramSize: number): Uint8Array {
  const bytes = new Uint8Array(DEVICE_STATE_BYTES);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, DEVICE_STATE_MAGIC);
  v.setUint16(4, DEVICE_STATE_VERSION);
  v.setUint16(6, DEVICE_STATE_BYTES);
  v.setUint8(8, WORKLOAD_KINDS.indexOf(regs.kind));
  v.setUint8(9, (regs.booted ? 1 : 0) | (regs.clock ? 2 : 0));
  v.setUint32(12, PAGE_SIZE);
  const u64 = [ramSize, regs.start, regs.end, regs.cursor, regs.passes, regs.pagesWritten];
  u64.forEach((n, i) => v.setBigUint64(16 + 8 * i, BigInt(n)));
  v.setFloat64(64, regs.rate);
  v.setFloat64(72, regs.hot);
  regs.prng.forEach((w, i) => v.setUint32(80 + 4 * i, w >>> 0));
  v.setBigUint64(96, BigInt(regs.nextSeq));
  return bytes;
}

function hex(n: number): string {
  return "0x" + n.toString(16);
}

/**
 * Decodes and validates a device state for a machine with `ramSize` bytes of RAM.
 * Throws DeviceStateError with a clear message on anything malformed or out of range.
 */
export function decodeDeviceState(bytes: Uint8Array, ramSize: number): WorkloadRegs {
  const fail = (detail: string): never => {
    throw new DeviceStateError(detail);
  };
  if (!(bytes instanceof Uint8Array)) fail("not a byte array");
  if (bytes.length < 8) fail(`truncated: ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const magic = v.getUint32(0);
  if (magic !== DEVICE_STATE_MAGIC) {
    fail(`bad magic ${hex(magic)} (expected ${hex(DEVICE_STATE_MAGIC)})`);
  }
  const version = v.getUint16(4);
  if (version !== DEVICE_STATE_VERSION && version !== 1) {
    fail(`version ${version} not supported (expected 1 or ${DEVICE_STATE_VERSION})`);
  }
  const want = version === 1 ? V1_BYTES : DEVICE_STATE_BYTES;
  const length = v.getUint16(6);
  if (length !== want) fail(`length field ${length}, expected ${want}`);
  if (bytes.length !== want) {
    fail(
      `${bytes.length} bytes, expected ${want}${bytes.length < length ? " (truncated)" : ""}`,
    );
  }
  const kindCode = v.getUint8(8);
  const kind = WORKLOAD_KINDS[kindCode] ?? fail(`unknown workload kind ${kindCode}`);
  const flags = v.getUint8(9);
  if ((flags & ~(version === 1 ? 1 : 3)) !== 0) fail(`unknown flags ${hex(flags)}`);
  if (v.getUint16(10) !== 0) fail("reserved field is not zero");
  const pageSize = v.getUint32(12);
  if (pageSize !== PAGE_SIZE) {
    fail(`page size ${pageSize} differs from this machine's ${PAGE_SIZE}`);
  }
  const names = ["RAM size", "start", "end", "cursor", "passes", "pages written"];
  const [ram, start, end, cursor, passes, pagesWritten] = names.map((name, i) => {
    const n = v.getBigUint64(16 + 8 * i);
    return n <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(n) : fail(`${name} ${n} out of range`);
  });
  if (ram !== ramSize) fail(`RAM size ${ram} differs from this machine's ${ramSize} bytes`);
  const rate = v.getFloat64(64);
  const hot = v.getFloat64(72);
  const prng = [0, 1, 2, 3].map((i) => v.getUint32(80 + 4 * i));
  if (prng.every((w) => w === 0)) fail("PRNG state is all zero");
  const booted = (flags & 1) === 1;
  const clock = (flags & 2) === 2;
  if (clock && kind !== "random") fail(`workload ${kind} carries the clock flag`);
  let nextSeq = 1;
  if (version !== 1) {
    const n = v.getBigUint64(96);
    if (n < 1n || n > BigInt(Number.MAX_SAFE_INTEGER)) fail(`output seq ${n} out of range`);
    nextSeq = Number(n);
  }
  if (kind === "increment") {
    if (start % PAGE_SIZE || end % PAGE_SIZE || start >= end || end > ramSize) {
      fail(`workload range ${hex(start)}..${hex(end)} outside RAM of ${ramSize} bytes`);
    }
    if (cursor % PAGE_SIZE || cursor < start || cursor >= end) {
      fail(`cursor ${hex(cursor)} outside workload range ${hex(start)}..${hex(end)}`);
    }
  } else if (start !== 0 || end !== 0 || cursor !== 0 || booted) {
    fail(`workload ${kind} carries an increment range, cursor or booted flag`);
  }
  if (kind === "random") {
    if (!(rate > 0 && rate <= MAX_RANDOM_RATE)) {
      fail(`random rate ${rate} outside (0, ${MAX_RANDOM_RATE}]`);
    }
    if (!(hot > 0 && hot <= 1)) fail(`random hot fraction ${hot} outside (0, 1]`);
  } else if (kind === "increment") {
    if (!(rate >= 0 && rate <= MAX_RANDOM_RATE)) {
      fail(`increment rate ${rate} outside [0, ${MAX_RANDOM_RATE}]`);
    }
    if (hot !== 0) fail(`workload ${kind} carries a hot fraction`);
  } else if (rate !== 0 || hot !== 0) {
    fail(`workload ${kind} carries a random rate or hot fraction`);
  }
  return {
    kind,
    booted,
    start,
    end,
    cursor,
    passes,
    pagesWritten,
    rate,
    hot,
    prng,
    nextSeq,
    clock,
  };
}
