/**
 * A resizable RAM block on the wire (a WebAssembly guest's memory, which the program grows with
 * `memory.grow` up to `--ram`): RAM_USED says how many bytes of a block are in use, GUEST_MODULE
 * names the guest's module in RAM's setup record so that a destination running another module
 * refuses the stream before any page arrives. docs/wire-format.md, "RAM_USED".
 *
 * QEMU's RAM blocks have a used_length below their max_length too (RAM_SAVE_FLAG_MEM_SIZE
 * carries it in the setup, and the destination resizes to it, never past max_length); QEMU
 * cancels a precopy whose block is resized during it, Ferry sends the new size instead.
 *
 * @module
 */
import { putFrameHeader } from "./encode.ts";
import { FRAME_HEADER_SIZE, FrameType } from "./frames.ts";
import { WireError } from "./wire_error.ts";

/** Encodes RAM_USED: block `block` has `bytes` in use. */
export function encodeRamUsed(block: number, bytes: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(FRAME_HEADER_SIZE + 10);
  const v = new DataView(b.buffer);
  putFrameHeader(v, 0, FrameType.RAM_USED, 10);
  v.setUint16(FRAME_HEADER_SIZE, block);
  v.setBigUint64(FRAME_HEADER_SIZE + 2, BigInt(bytes));
  return b;
}

/** Decodes RAM_USED's payload (10 bytes, the frame table checked its length). */
export function decodeRamUsed(p: Uint8Array): { block: number; bytes: number } {
  const v = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const big = v.getBigUint64(2);
  // Above 2^53 is past every cap (MAX_BLOCK_SIZE is 2^48); keep it unsafe-but-large.
  return {
    block: v.getUint16(0),
    bytes: big > BigInt(Number.MAX_SAFE_INTEGER) ? Infinity : Number(big),
  };
}

/** What the destination knows of a block when RAM_USED names it. */
export interface ResizableBlock {
  name: string;
  /** The block's maximum (the cap, `--ram`): the CONFIG's size. */
  size: number;
  /** Bytes in use now. */
  used: number;
  /** The block grows in steps of this many bytes (64 KiB for a wasm memory); null: fixed. */
  unit: number | null;
}

/**
 * Checks RAM_USED against the receiving block and returns the bytes it must have in use: the
 * larger of what it has and what the source says (page channels may say an older size after a
 * newer one; a block never shrinks). Throws WireError, before anything grows, when the block
 * index is out of range, the block is fixed and the size differs, the size is not a whole
 * number of steps, or it is past the block's maximum.
 */
export function checkRamUsed(
  blocks: readonly ResizableBlock[],
  block: number,
  bytes: number,
): number {
  if (block >= blocks.length) {
    throw new WireError(`RAM block index ${block} out of range (${blocks.length} blocks)`);
  }
  const b = blocks[block];
  if (bytes > b.size) {
    throw new WireError(
      `RAM_USED: RAM block '${b.name}' would grow to ${bytes} bytes, past its maximum ` +
        `${b.size} (--ram)`,
    );
  }
  if (b.unit === null) {
    if (bytes === b.size) return b.used;
    throw new WireError(
      `RAM_USED: RAM block '${b.name}' is not resizable here (${b.size} bytes), the source ` +
        `uses ${bytes}`,
    );
  }
  if (bytes % b.unit !== 0) {
    throw new WireError(
      `RAM_USED: ${bytes} bytes is not a whole number of ${b.unit}-byte steps of RAM block ` +
        `'${b.name}'`,
    );
  }
  return Math.max(b.used, bytes);
}

/** Encodes GUEST_MODULE: the SHA-256 (64 hex digits) of the guest's module. */
export function encodeGuestModule(sha256: string): Uint8Array<ArrayBuffer> {
  if (!/^[0-9a-f]{64}$/.test(sha256)) throw new RangeError(`not a SHA-256: ${sha256}`);
  const b = new Uint8Array(FRAME_HEADER_SIZE + 32);
  putFrameHeader(new DataView(b.buffer), 0, FrameType.GUEST_MODULE, 32);
  for (let i = 0; i < 32; i++) {
    b[FRAME_HEADER_SIZE + i] = parseInt(sha256.slice(2 * i, 2 * i + 2), 16);
  }
  return b;
}

/** The hex SHA-256 in GUEST_MODULE's payload. */
export function decodeGuestModule(p: Uint8Array): string {
  return Array.from(p.subarray(0, 32), (x) => x.toString(16).padStart(2, "0")).join("");
}

/**
 * The destination's check of the source's guest module against its own (`local`: its
 * WebAssembly guest's SHA-256, or null for a synthetic workload); `remote` is GUEST_MODULE's
 * (null: none came before the first page). Throws WireError naming both.
 */
export function checkGuestModule(local: string | null, remote: string | null): void {
  if (local === remote) return;
  if (remote === null) {
    throw new WireError(
      "the source runs a --workload, this machine a WebAssembly guest (--guest wasm:)",
    );
  }
  if (local === null) {
    throw new WireError(
      `the source runs a WebAssembly guest (module sha256 ${remote}), this machine a --workload`,
    );
  }
  throw new WireError(`the source runs guest module sha256 ${remote}, this machine ${local}`);
}
