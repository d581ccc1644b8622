/**
 * A WebAssembly guest's device state, as it travels in the migration stream (big-endian):
 *
 * | field                         | size |
 * |-------------------------------|-----:|
 * | magic `FWSM`                  |    4 |
 * | version, 2                    |    2 |
 * | reserved, 0                   |    2 |
 * | module SHA-256                |   32 |
 * | RAM size in bytes (the cap)   |    8 |
 * | memory in use, bytes          |    8 | (a multiple of 64 KiB: the memory grows)
 * | length L1, the vCPU registers |  4+L1 (device_state.ts, workload `idle`) |
 * | length L2, the guest's state  |  4+L2 (written by the parked vCPU, see GuestState) |
 * | length L3, unread stdin       |  4+L3 |
 *
 * The guest's state (GuestState, encodeGuestState): flags u8 (bit 0 started, bit 1 exited),
 * exit code i32, next output seq f64, monotonic clock ns f64, open files u32 count, globals u32 count then per global a type byte (0 i32, 1 i64, 2 f32,
 * 3 f64) and 8 value bytes, then per open file (wasi_drives.ts) its fd u32, flags u8,
 * position f64, the drive id's length u8 and bytes, then the unwound asyncify stack: u32
 * length and its bytes (asyncify memory from offset 0).
 *
 * @module
 */

import { DeviceStateError } from "../memory/device_state.ts";
import { MAX_OPEN_FILES, type OpenFile } from "./wasi_drives.ts";

/** "FWSM". */
export const WASM_STATE_MAGIC = 0x4657534d;
const VERSION = 2;
const HEADER = 56;

/** A global's value as saved. */
export type GlobalValue = { type: 0 | 2 | 3; value: number } | { type: 1; value: bigint };

/** What the vCPU saves of a parked guest. */
export interface GuestState {
  started: boolean;
  exited: boolean;
  exitCode: number;
  /** The seq the next output record gets. */
  nextSeq: number;
  /** CLOCK_MONOTONIC as the guest last saw it, ns. */
  monotonicNs: number;
  globals: GlobalValue[];
  /** The drives it has open (fd table beyond stdio and the preopen). */
  files: OpenFile[];
  /** The unwound stack (asyncify memory from 0); empty when not started or exited. */
  stack: Uint8Array;
}

/** The parts of a wasm device state. */
export interface WasmDeviceState {
  sha256: string;
  ramSize: number;
  /** Bytes of the memory in use (it grows with memory.grow up to ramSize). */
  used: number;
  regs: Uint8Array;
  guest: Uint8Array;
  stdin: Uint8Array;
}

function hexOf(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** True when `bytes` starts with the wasm guest's magic. */
export function isWasmDeviceState(bytes: Uint8Array): boolean {
  return bytes.length >= 4 &&
    new DataView(bytes.buffer, bytes.byteOffset, 4).getUint32(0) === WASM_STATE_MAGIC;
}

/** Encodes the parts. */
export function encodeWasmDeviceState(s: WasmDeviceState): Uint8Array {
  const out = new Uint8Array(HEADER + 12 + s.regs.length + s.guest.length + s.stdin.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, WASM_STATE_MAGIC);
  v.setUint16(4, VERSION);
  for (let i = 0; i < 32; i++) out[8 + i] = parseInt(s.sha256.slice(2 * i, 2 * i + 2), 16);
  v.setBigUint64(40, BigInt(s.ramSize));
  v.setBigUint64(48, BigInt(s.used));
  let at = HEADER;
  for (const part of [s.regs, s.guest, s.stdin]) {
    v.setUint32(at, part.length);
    out.set(part, at + 4);
    at += 4 + part.length;
  }
  return out;
}

/**
 * Decodes and checks a wasm device state against this machine's module and RAM size.
 * Throws DeviceStateError with a clear message on anything malformed or mismatched.
 */
export function decodeWasmDeviceState(
  bytes: Uint8Array,
  sha256: string,
  ramSize: number,
): WasmDeviceState {
  const fail = (d: string): never => {
    throw new DeviceStateError(d);
  };
  if (bytes.length < HEADER) fail(`truncated wasm guest state: ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (v.getUint32(0) !== WASM_STATE_MAGIC) fail("not a WebAssembly guest's state");
  const version = v.getUint16(4);
  if (version !== VERSION) fail(`wasm guest state version ${version} not supported`);
  const theirs = hexOf(bytes.subarray(8, 40));
  if (theirs !== sha256) {
    fail(`the source runs guest module sha256 ${theirs}, this machine ${sha256}`);
  }
  const ram = Number(v.getBigUint64(40));
  if (ram !== ramSize) fail(`RAM size ${ram} differs from this machine's ${ramSize} bytes`);
  const used = Number(v.getBigUint64(48));
  if (used > ramSize || used % 65536 !== 0) {
    fail(`memory in use ${used} bytes is not whole 64 KiB pages within ${ramSize} bytes`);
  }
  const parts: Uint8Array[] = [];
  let at = HEADER;
  for (let i = 0; i < 3; i++) {
    if (at + 4 > bytes.length) fail("truncated wasm guest state");
    const n = v.getUint32(at);
    if (at + 4 + n > bytes.length) fail("truncated wasm guest state");
    parts.push(bytes.slice(at + 4, at + 4 + n));
    at += 4 + n;
  }
  if (at !== bytes.length) fail(`${bytes.length - at} trailing bytes after the wasm guest state`);
  return { sha256, ramSize, used, regs: parts[0], guest: parts[1], stdin: parts[2] };
}

/** Encodes what the vCPU saves. */
export function encodeGuestState(g: GuestState): Uint8Array {
  const ids = g.files.map((f) => new TextEncoder().encode(f.drive));
  const filesBytes = ids.reduce((n, id) => n + 14 + id.length, 0);
  const out = new Uint8Array(25 + 4 + 9 * g.globals.length + filesBytes + 4 + g.stack.length);
  const v = new DataView(out.buffer);
  v.setUint8(0, (g.started ? 1 : 0) | (g.exited ? 2 : 0));
  v.setInt32(1, g.exitCode);
  v.setFloat64(5, g.nextSeq);
  v.setFloat64(13, g.monotonicNs);
  v.setUint32(21, g.files.length);
  v.setUint32(25, g.globals.length);
  let at = 29;
  for (const gl of g.globals) {
    v.setUint8(at, gl.type);
    if (gl.type === 1) v.setBigInt64(at + 1, gl.value);
    else if (gl.type === 2) v.setFloat32(at + 1, gl.value);
    else if (gl.type === 3) v.setFloat64(at + 1, gl.value);
    else v.setInt32(at + 1, gl.value);
    at += 9;
  }
  g.files.forEach((f, i) => {
    v.setUint32(at, f.fd);
    v.setUint8(at + 4, f.flags);
    v.setFloat64(at + 5, f.pos);
    v.setUint8(at + 13, ids[i].length);
    out.set(ids[i], at + 14);
    at += 14 + ids[i].length;
  });
  v.setUint32(at, g.stack.length);
  out.set(g.stack, at + 4);
  return out;
}

/** Decodes what the vCPU saved; `globals` is the count this module exports. */
export function decodeGuestState(b: Uint8Array, globals: number): GuestState {
  const fail = (d: string): never => {
    throw new DeviceStateError(`wasm guest state: ${d}`);
  };
  if (b.length < 33) fail("truncated");
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  const flags = v.getUint8(0);
  if (flags & ~3) fail(`unknown flags ${flags}`);
  const n = v.getUint32(25);
  if (n !== globals) fail(`${n} globals, this module has ${globals}`);
  if (29 + 9 * n + 4 > b.length) fail("truncated");
  const list: GlobalValue[] = [];
  let at = 29;
  for (let i = 0; i < n; i++, at += 9) {
    const type = v.getUint8(at);
    if (type === 1) list.push({ type, value: v.getBigInt64(at + 1) });
    else if (type === 2) list.push({ type, value: v.getFloat32(at + 1) });
    else if (type === 3) list.push({ type, value: v.getFloat64(at + 1) });
    else if (type === 0) list.push({ type, value: v.getInt32(at + 1) });
    else fail(`global ${i} has unknown type ${type}`);
  }
  const nFiles = v.getUint32(21);
  if (nFiles > MAX_OPEN_FILES) fail(`${nFiles} open files`);
  const files: OpenFile[] = [];
  for (let i = 0; i < nFiles; i++) {
    if (at + 14 > b.length) fail("truncated");
    const idLen = v.getUint8(at + 13);
    if (at + 14 + idLen + 4 > b.length) fail("truncated");
    const pos = v.getFloat64(at + 5);
    if (!Number.isSafeInteger(pos) || pos < 0) fail(`open file position ${pos} invalid`);
    files.push({
      fd: v.getUint32(at),
      flags: v.getUint8(at + 4),
      pos,
      drive: String.fromCharCode(...b.subarray(at + 14, at + 14 + idLen)), // ids are ASCII
    });
    at += 14 + idLen;
  }
  if (at + 4 > b.length) fail("truncated");
  const len = v.getUint32(at);
  if (at + 4 + len !== b.length) fail("stack length does not match");
  const nextSeq = v.getFloat64(5);
  if (!Number.isSafeInteger(nextSeq) || nextSeq < 1) fail(`output seq ${nextSeq} invalid`);
  return {
    started: (flags & 1) !== 0,
    exited: (flags & 2) !== 0,
    exitCode: v.getInt32(1),
    nextSeq,
    monotonicNs: v.getFloat64(13),
    globals: list,
    files,
    stack: b.slice(at + 4),
  };
}
