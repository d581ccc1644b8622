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
  return encodeWasmDeviceState({ sha256: w.sha256, ramSize, regs, guest, stdin });
}

/**
 * Checks `bytes` completely (module hash, RAM size, registers, guest state, its open files
 * against this machine's `drives`), then hands the guest state to the vCPU (applied before it
 * next runs) and replaces the unread stdin. Returns the registers to install. Throws
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
