/**
 * COLO's input mirror (QEMU's colo-proxy mirrors what clients send the primary to the
 * secondary): input for a WebAssembly guest (`POST /machine/input`) that arrives while the
 * primary runs COLO goes to its COLO Worker, which gives it to the primary's guest and sends it
 * to the secondary (COLO_INPUT) in one step, between checkpoints, never during one. So every
 * input is either in the next checkpoint's device state (given before its capture; the
 * secondary had it from the frame before, and the state replaces its unread input anyway) or
 * after it in the stream (given after the capture; the secondary gives it to its guest after
 * applying that checkpoint). Both guests then read the same input and write the same output,
 * which the output compare releases at once instead of after its timeout.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { ctlViews, ringWake } from "../../adapters/memory/vcpu_ctl.ts";
import { stdinOffer } from "../../adapters/wasm/wasm_shared.ts";

/** Gives `bytes` to `guest`'s stdin and wakes its vCPU; false when its unread input is full. */
export function giveInput(guest: SharedGuest, bytes: Uint8Array): boolean {
  const w = guest.wasm;
  if (!w) return false;
  if (stdinOffer(w.stdin, bytes, () => true) !== null) return false;
  ringWake(ctlViews(guest.ctl).i32);
  return true;
}

/**
 * The primary's inputs waiting for the COLO loop (between checkpoints). The main thread counts
 * the bytes it hands over in `waitingBytes` (shared) before it posts them, and refuses input
 * once those and the guest's unread input would pass its 1 MiB (guest_control.ts): while COLO
 * holds (a silent secondary), nothing is given for as long as the hold lasts. What is taken
 * from here is counted off.
 */
export class InputQueue {
  readonly #queue: Uint8Array[] = [];
  readonly #waitingBytes: Int32Array | undefined;

  /** A queue; `waitingBytes` is the main thread's count of what it handed over (if shared). */
  constructor(waitingBytes?: Int32Array) {
    this.#waitingBytes = waitingBytes;
  }

  /** Input that arrived (from the main thread). */
  push(bytes: Uint8Array): void {
    this.#queue.push(bytes);
  }

  /** Whether any waits. */
  get waiting(): boolean {
    return this.#queue.length > 0;
  }

  /**
   * Leaving COLO: what waits goes to `guest` when it runs on here (`runsOn`); returns the bytes
   * not given (this side stops: the secondary runs the guest, and never had them).
   */
  leave(guest: SharedGuest, runsOn: boolean): number {
    let lost = 0;
    for (const bytes of this.take()) if (!runsOn || !giveInput(guest, bytes)) lost += bytes.length;
    return lost;
  }

  /** Takes everything waiting, oldest first (given to the guest or dropped: counted off). */
  take(): Uint8Array[] {
    const taken = this.#queue.splice(0);
    countOff(this.#waitingBytes, taken);
    return taken;
  }
}

/** Counts `taken` off the main thread's count of input handed to this Worker. */
export function countOff(waitingBytes: Int32Array | undefined, taken: Uint8Array[]): void {
  if (!waitingBytes) return;
  const bytes = taken.reduce((n, b) => n + b.length, 0);
  if (bytes > 0) Atomics.sub(waitingBytes, 0, bytes);
}
