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

/** The primary's inputs waiting for the COLO loop (between checkpoints). */
export class InputQueue {
  readonly #queue: Uint8Array[] = [];

  /** Input that arrived (from the main thread). */
  push(bytes: Uint8Array): void {
    this.#queue.push(bytes);
  }

  /** Whether any waits. */
  get waiting(): boolean {
    return this.#queue.length > 0;
  }

  /** Takes everything waiting, oldest first. */
  take(): Uint8Array[] {
    return this.#queue.splice(0);
  }
}
