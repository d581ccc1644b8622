/**
 * The device state of a WebAssembly guest, assembled from and applied to the shared parts
 * (any thread; the vCPU parked): the registers, the state the parked vCPU left in the state
 * cell, and the unread stdin.
 *
 * @module
 */

import { decodeDeviceState, DeviceStateError } from "../memory/device_state.ts";
import type { WorkloadRegs } from "../memory/workload.ts";
import {
  decodeGuestState,
  decodeWasmDeviceState,
  encodeWasmDeviceState,
  isWasmDeviceState,
} from "./wasm_device_state.ts";
import { checkOpenFiles } from "./wasi_drives.ts";
import {
  STATE_LOAD,
  STATE_SAVED,
  stateViews,
  STDIN_CAPACITY,
  stdinReplace,
  stdinSeal,
  type WasmShared,
} from "./wasm_shared.ts";

/**
 * The device state of a parked WebAssembly guest; `regs` are the encoded registers. Seals
 * the stdin ring: input sent after this is refused while the guest is away.
 */
export function saveWasmState(w: WasmShared, regs: Uint8Array, ramSize: number): Uint8Array {
  const { i32, bytes } = stateViews(w.state);
  if (Atomics.load(i32, 0) !== STATE_SAVED) {
    throw new Error("device state: the WebAssembly vCPU has not saved its state");
  }
  const guest = bytes.slice(0, Atomics.load(i32, 1));
  const stdin = stdinSeal(w.stdin);
  const used = w.memory.buffer.byteLength;
  return encodeWasmDeviceState({ sha256: w.sha256, ramSize, used, regs, guest, stdin });
}

/**
 * The seq a parked WebAssembly guest's next output record gets: its state cell holds the state
 * the vCPU saved when it parked, or the one a load left for it (the guest state's `nextSeq`,
 * big-endian f64 at offset 5; wasm_device_state.ts).
 */
export function wasmNextSeq(w: WasmShared): number {
  const { i32, bytes } = stateViews(w.state);
  const n = Atomics.load(i32, 1);
  const seq = n >= 13 ? new DataView(bytes.buffer, bytes.byteOffset + 5, 8).getFloat64(0) : NaN;
  if (!Number.isSafeInteger(seq) || seq < 1) {
    throw new Error("the WebAssembly vCPU's state cell holds no output seq");
  }
  return seq;
}

/**
 * Checks `bytes` completely (module hash, RAM size, memory in use, registers, guest state, its
 * open files against this machine's `drives`), then hands the guest state to the vCPU (applied
 * before it next runs) and replaces the unread stdin. Returns the registers to install. Throws
 * DeviceStateError, changing nothing.
 */
export function loadWasmState(
  w: WasmShared,
  bytes: Uint8Array,
  ramSize: number,
  drives: readonly { id: string; size: number }[] = [],
): WorkloadRegs {
  if (!isWasmDeviceState(bytes)) {
    throw new DeviceStateError(
      "the source runs a --workload, this machine a WebAssembly guest (--guest wasm:)",
    );
  }
  const s = decodeWasmDeviceState(bytes, w.sha256, ramSize);
  // RAM_USED frames grew the memory with the source's; the size when it stopped must match. A
  // memory an earlier, failed incoming migration grew past it cannot shrink (wasm memories
  // do not): that destination must be started again.
  const mine = w.memory.buffer.byteLength;
  if (s.used !== mine) {
    throw new DeviceStateError(
      s.used < mine
        ? `the source's memory has ${s.used} bytes in use, this machine's ${mine} (grown ` +
          "by an earlier incoming migration; a WebAssembly memory cannot shrink: start the " +
          "destination again)"
        : `the source's memory has ${s.used} bytes in use, the stream grew this one to ${mine}`,
    );
  }
  const regs = decodeDeviceState(s.regs, ramSize);
  checkOpenFiles(decodeGuestState(s.guest, w.globals).files, drives);
  const cell = stateViews(w.state);
  if (s.guest.length > cell.bytes.length) throw new DeviceStateError("wasm guest state too big");
  if (s.stdin.length > STDIN_CAPACITY) throw new DeviceStateError("unread stdin too big");
  stdinReplace(w.stdin, s.stdin);
  cell.bytes.set(s.guest);
  Atomics.store(cell.i32, 1, s.guest.length);
  Atomics.store(cell.i32, 0, STATE_LOAD);
  return regs;
}
