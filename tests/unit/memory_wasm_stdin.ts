/**
 * A WebAssembly guest's stdin at a switchover (adapters/wasm/wasm_shared.ts): input taken
 * before the device state travels with it; input offered after is refused while the guest
 * is away, so none is accepted and lost. And the wasm device state refuses another module or
 * RAM size, saying which. A trap's reason is in shared memory before the runstate says so.
 */
import assert from "node:assert/strict";
import {
  allocateWasmBuffers,
  publishTrap,
  STDIN_CAPACITY,
  stdinOffer,
  stdinPending,
  stdinRead,
  stdinReplace,
  stdinSeal,
  TRAP_TEXT_CAPACITY,
  trapMessage,
} from "../../adapters/wasm/wasm_shared.ts";
import {
  decodeWasmDeviceState,
  encodeWasmDeviceState,
} from "../../adapters/wasm/wasm_device_state.ts";
import { DeviceStateError } from "../../adapters/memory/device_state.ts";

const bytes = (s: string) => new TextEncoder().encode(s);
const text = (b: Uint8Array) => new TextDecoder().decode(b);

Deno.test("wasm stdin: after the device state took the input, more is refused while the guest is away", () => {
  const { stdin } = allocateWasmBuffers();
  const away = () => false, here = () => true;
  assert.equal(stdinOffer(stdin, bytes("SET a 1\n"), away), null, "not sealed: taken");
  assert.equal(text(stdinSeal(stdin)), "SET a 1\n", "the device state gets the unread input");
  assert.equal(stdinPending(stdin), 8, "peeked, not consumed");
  assert.equal(stdinOffer(stdin, bytes("GET a\n"), away), "sealed");
  assert.equal(stdinPending(stdin), 8, "nothing written when refused");
  // The migration failed: the guest runs on here, the seal is lifted by the next input.
  assert.equal(stdinOffer(stdin, bytes("GET a\n"), here), null);
  assert.equal(stdinOffer(stdin, bytes("GET b\n"), away), null, "unsealed until the next save");
  assert.equal(text(stdinRead(stdin, 100)), "SET a 1\nGET a\nGET b\n");
  assert.equal(stdinOffer(stdin, new Uint8Array(STDIN_CAPACITY + 1), here), "full");
});

Deno.test("wasm stdin: a loaded device state's input replaces what was there and unseals", () => {
  const { stdin } = allocateWasmBuffers();
  stdinOffer(stdin, bytes("stale\n"), () => true);
  stdinSeal(stdin);
  assert.equal(stdinReplace(stdin, bytes("COUNT\n")), true);
  assert.equal(stdinOffer(stdin, bytes("SUM\n"), () => false), null);
  assert.equal(text(stdinRead(stdin, 100)), "COUNT\nSUM\n");
  assert.equal(stdinReplace(stdin, new Uint8Array(STDIN_CAPACITY + 1)), false);
});

Deno.test("wasm device state: another module or RAM size is refused, saying which", () => {
  const ours = "ab".repeat(32), theirs = "cd".repeat(32);
  const empty = new Uint8Array(0);
  const state = encodeWasmDeviceState({
    sha256: ours,
    ramSize: 16 << 20,
    used: 1 << 20,
    regs: empty,
    guest: empty,
    stdin: bytes("GET a\n"),
  });
  assert.throws(
    () => decodeWasmDeviceState(state, theirs, 16 << 20),
    (e) =>
      e instanceof DeviceStateError &&
      e.message.includes(`guest module sha256 ${ours}, this machine ${theirs}`),
  );
  assert.throws(
    () => decodeWasmDeviceState(state, ours, 32 << 20),
    (e) =>
      e instanceof DeviceStateError &&
      e.message.includes("RAM size 16777216 differs from this machine's 33554432 bytes"),
  );
  assert.equal(text(decodeWasmDeviceState(state, ours, 16 << 20).stdin), "GET a\n");
});

Deno.test("wasm trap cell: none until the guest trapped, then its message (cut at the cell's size)", () => {
  const { trap } = allocateWasmBuffers();
  assert.equal(trapMessage(trap), null);
  publishTrap(trap, "");
  assert.equal(trapMessage(trap), "", "an empty message is still a trap");
  publishTrap(trap, "unreachable executed");
  assert.equal(trapMessage(trap), "unreachable executed");
  const long = "é".repeat(TRAP_TEXT_CAPACITY);
  publishTrap(trap, long);
  const kept = trapMessage(trap)!;
  assert.ok(long.startsWith(kept) && kept.length === TRAP_TEXT_CAPACITY / 2, `${kept.length}`);
});
