/**
 * A WebAssembly guest's standard input and its end as the main thread sees them: input
 * offered to its stdin ring (`POST /machine/input`), why input is refused, and `GET /machine`'s
 * `x-guest` (its module, and how it ended).
 *
 * @module
 */
import type { SharedGuest } from "./guest_ram.ts";
import { ctlViews, ringWake, type RunState } from "./vcpu_ctl.ts";
import {
  exitCode,
  STDIN_CAPACITY,
  stdinOffer,
  stdinPending,
  trapMessage,
  type WasmShared,
} from "../wasm/wasm_shared.ts";

/** `GET /machine`'s `x-guest` for a WebAssembly guest. */
export interface GuestInfo {
  kind: "wasm";
  path: string;
  sha256: string;
  /** The exit code once the program exited (runstate `shutdown`), else null. */
  "exit-code": number | null;
  /** Why the program stopped when it trapped (runstate `guest-panicked`), else null. */
  error: string | null;
}

/**
 * Why `POST /machine/input` was refused: `no-input` (no WebAssembly guest, or it has ended),
 * `full` (its unread input fills the buffer), `incoming` (the guest has not arrived: runstate
 * inmigrate; what is written now would be replaced by the source's unread input), `away`
 * (a migration took the guest's state, unread input included: runstate finish-migrate or
 * postmigrate; its input goes to the destination).
 */
export type InputRefusal = "no-input" | "full" | "incoming" | "away";

/** A WebAssembly guest's module and exit, or null for the synthetic workloads. */
export function guestInfoOf(shared: SharedGuest): GuestInfo | null {
  const w = shared.wasm;
  if (!w) return null;
  const trap = trapMessage(w.trap);
  return {
    kind: "wasm",
    path: w.path,
    sha256: w.sha256,
    "exit-code": trap === null ? exitCode(w.state) : null,
    error: trap,
  };
}

/**
 * Appends `bytes` to the guest's stdin at `runstate`; null when done, else why not. Input
 * accepted is never lost: before a migration takes the guest's state it travels with it;
 * after, it is refused here until the guest runs here again (the migration failed).
 */
export function offerInput(
  shared: SharedGuest,
  runstate: () => RunState,
  bytes: Uint8Array,
): InputRefusal | null {
  const w = inputTaker(shared);
  if (!w) return "no-input";
  if (runstate() === "inmigrate") return "incoming";
  const away = () => ["finish-migrate", "postmigrate"].includes(runstate());
  const refused = stdinOffer(w.stdin, bytes, () => !away());
  if (refused !== null) return refused === "sealed" ? "away" : refused;
  ringWake(ctlViews(shared.ctl).i32);
  return null;
}

/**
 * Why {@link offerInput} refuses `bytes` now, writing nothing, with `waiting` more bytes of
 * input on their way to the guest.
 */
export function inputRefusal(
  shared: SharedGuest,
  bytes: Uint8Array,
  waiting: number,
): InputRefusal | null {
  const w = inputTaker(shared);
  if (!w) return "no-input";
  return stdinPending(w.stdin) + waiting + bytes.length > STDIN_CAPACITY ? "full" : null;
}

/** The WebAssembly guest that takes input (not exited, not trapped), or null. */
function inputTaker(shared: SharedGuest): WasmShared | null {
  const w = shared.wasm;
  return w && exitCode(w.state) === null && trapMessage(w.trap) === null ? w : null;
}
