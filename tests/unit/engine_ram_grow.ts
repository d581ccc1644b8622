/**
 * A RAM block that grows while it migrates (a WebAssembly guest's memory, issue 22 item 2),
 * without sockets: the source's PageSender sends pages only up to the block's size now and
 * says RAM_USED before any page past the size the destination knows; the destination's
 * RamLoader grows to it, never past the block's maximum, and refuses runs past its used end.
 * Also GUEST_MODULE: another module is refused before any page. Growable blocks here are plain
 * growable SharedArrayBuffers, as a wasm memory's toResizableBuffer() gives.
 */
import assert from "node:assert/strict";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { allocateGuest, type SharedGuest, usedBytes } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import type { WasmShared } from "../../adapters/wasm/wasm_shared.ts";
import { PageSender } from "../../domain/engine/page_sender.ts";
import { RamLoader } from "../../domain/engine/ram_loader.ts";
import { createStats } from "../../domain/engine/stats.ts";
import {
  checkRamUsed,
  decodeRamUsed,
  encodeGuestModule,
  encodePageRun,
  encodeRamUsed,
  encodeStreamHeader,
  FrameReader,
  FrameType,
  WireError,
} from "../../domain/wire/mod.ts";

const KiB = 1024;
const CAP = 1024 * KiB;
const STEP = 64 * KiB;

/** A one-block guest whose block starts at `initial` bytes and may grow to CAP. */
function growable(initial: number, sha256?: string): SharedGuest {
  const guest = allocateGuest([{ name: "pc.ram", size: CAP }]);
  guest.ram[0] = new SharedArrayBuffer(initial, { maxByteLength: CAP });
  if (sha256) guest.wasm = { sha256 } as WasmShared;
  return guest;
}

/** Places `bytes` (frames after a stream header) with `loader`, as the RAM section does. */
async function feed(loader: RamLoader, bytes: Uint8Array): Promise<void> {
  const [a, b] = memoryChannelPair(4 << 20);
  const reader = new FrameReader(b);
  const header = new Uint8Array(10);
  const writing = (async () => {
    await a.write(encodeStreamHeader());
    await a.write(bytes);
    await a.closeWrite();
  })();
  await reader.readStreamHeader();
  let read = 8;
  while (read < bytes.length + 8) {
    const f = await reader.next();
    read += 5 + f.length;
    if (f.type === FrameType.PAGE_RUN) await loader.pageRun(reader, f.length, header);
    else if (f.type === FrameType.ZERO_RUN) loader.zeroRun(await reader.readPayload());
    else if (f.type === FrameType.RAM_USED) loader.ramUsed(await reader.readPayload());
    else if (f.type === FrameType.GUEST_MODULE) loader.guestModule(await reader.readPayload());
    else throw new Error(`test fed frame type ${f.type}`);
  }
  await writing;
  a.close();
  b.close();
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) out.set(p, (at += p.length) - p.length);
  return out;
}

/** The frame types in `bytes` (frames only), in order, with RAM_USED's size. */
function frames(bytes: Uint8Array): string[] {
  const out: string[] = [];
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let at = 0; at < bytes.length;) {
    const type = v.getUint8(at), len = v.getUint32(at + 1);
    const p = bytes.subarray(at + 5, at + 5 + len);
    if (type === FrameType.RAM_USED) out.push(`RAM_USED ${decodeRamUsed(p).bytes}`);
    else if (type === FrameType.PAGE_RUN) out.push(`PAGE_RUN ${v.getUint32(at + 7)}`);
    else if (type === FrameType.ZERO_RUN) out.push(`ZERO_RUN ${v.getUint32(at + 7)}`);
    else out.push(`0x${type.toString(16)}`);
    at += 5 + len;
  }
  return out;
}

/** A sender over `guest` whose output is collected. */
function sender(guest: SharedGuest): { s: PageSender; out: () => Uint8Array } {
  const parts: Uint8Array[] = [];
  const s = new PageSender(guest, { write: (p) => (parts.push(p.slice()), Promise.resolve()) });
  return {
    s,
    out: () => {
      const b = concat(parts);
      parts.length = 0;
      return b;
    },
  };
}

Deno.test("ram grow: checkRamUsed grows, never shrinks, never past the cap", () => {
  const blocks = [
    { name: "pc.ram", size: CAP, used: 2 * STEP, unit: STEP },
    { name: "vga", size: 8 * PAGE_SIZE, used: 8 * PAGE_SIZE, unit: null },
  ];
  assert.equal(checkRamUsed(blocks, 0, 4 * STEP), 4 * STEP);
  assert.equal(checkRamUsed(blocks, 0, STEP), 2 * STEP, "an older, smaller size: no shrink");
  assert.equal(checkRamUsed(blocks, 0, CAP), CAP);
  assert.equal(checkRamUsed(blocks, 1, 8 * PAGE_SIZE), 8 * PAGE_SIZE);
  const refused = (block: number, bytes: number, re: RegExp) =>
    assert.throws(() => checkRamUsed(blocks, block, bytes), (e) => {
      assert.ok(e instanceof WireError);
      assert.match(e.message, re);
      return true;
    });
  refused(0, CAP + STEP, /'pc.ram' would grow to 1114112 bytes, past its maximum 1048576/);
  refused(0, Infinity, /past its maximum/);
  refused(0, 3 * STEP + PAGE_SIZE, /not a whole number of 65536-byte steps/);
  refused(1, 4 * PAGE_SIZE, /'vga' is not resizable here \(32768 bytes\), the source uses 16384/);
  refused(2, STEP, /RAM block index 2 out of range \(2 blocks\)/);
  assert.equal(decodeRamUsed(encodeRamUsed(0, 2 ** 52).subarray(5)).bytes, 2 ** 52);
});

Deno.test("ram grow: the destination grows to RAM_USED before pages past its old end; runs past it without one are refused", async () => {
  const guest = growable(STEP);
  const loader = new RamLoader(guest, createStats());
  assert.equal(loader.unseen(), 16, "the pages in use");
  const page = new Uint8Array(PAGE_SIZE).fill(7);
  await assert.rejects(
    feed(loader, encodePageRun(0, 16, PAGE_SIZE, page)),
    /run of 1 pages at page 16 goes past the used end of RAM block 'pc.ram' \(16 pages in use; no RAM_USED grew it\)/,
  );
  await feed(loader, concat([encodeRamUsed(0, 3 * STEP), encodePageRun(0, 40, PAGE_SIZE, page)]));
  assert.equal(usedBytes(guest, 0), 3 * STEP);
  assert.equal(new Uint8Array(guest.ram[0])[40 * PAGE_SIZE + 9], 7);
  assert.equal(loader.unseen(), 16, "grown pages are zero on both sides: arrived");
});

Deno.test("ram grow: a hostile RAM_USED (past the cap, a part step, a fixed block) fails and nothing grows", async () => {
  const guest = growable(STEP);
  const loader = new RamLoader(guest, createStats());
  for (
    const [frame, re] of [
      [encodeRamUsed(0, CAP + STEP), /past its maximum 1048576 \(--ram\)/],
      [encodeRamUsed(0, 2 ** 60), /past its maximum/],
      [encodeRamUsed(0, 2 * STEP + PAGE_SIZE), /not a whole number of 65536-byte steps/],
      [encodeRamUsed(3, STEP), /RAM block index 3 out of range/],
    ] as const
  ) {
    await assert.rejects(feed(loader, frame), re);
    assert.equal(usedBytes(guest, 0), STEP, "not grown");
  }
  const fixed = new RamLoader(allocateGuest([{ name: "pc.ram", size: CAP }]), createStats());
  await assert.rejects(feed(fixed, encodeRamUsed(0, STEP)), /is not resizable here/);
});

Deno.test("ram grow: GUEST_MODULE: another module is refused before any page; a wasm destination wants one", async () => {
  const ours = "ab".repeat(32), theirs = "cd".repeat(32);
  const page = encodePageRun(0, 0, PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(1));
  const other = growable(STEP, ours);
  await assert.rejects(
    feed(new RamLoader(other, createStats()), concat([encodeGuestModule(theirs), page])),
    new RegExp(`the source runs guest module sha256 ${theirs}, this machine ${ours}`),
  );
  assert.equal(new Uint8Array(other.ram[0])[0], 0, "no page landed");
  await assert.rejects(
    feed(new RamLoader(growable(STEP, ours), createStats()), page),
    /the source runs a --workload, this machine a WebAssembly guest/,
  );
  await assert.rejects(
    feed(new RamLoader(growable(STEP), createStats()), encodeGuestModule(theirs)),
    /the source runs a WebAssembly guest \(module sha256 cdcd.*\), this machine a --workload/,
  );
  const same = growable(STEP, ours);
  await feed(new RamLoader(same, createStats()), concat([encodeGuestModule(ours), page]));
  assert.equal(new Uint8Array(same.ram[0])[0], 1);
});

Deno.test("ram grow: a block that grows during the precopy arrives at the source's size, byte for byte", async () => {
  const src = growable(2 * STEP);
  const dst = growable(STEP);
  const loader = new RamLoader(dst, createStats());
  const ram = new Uint8Array(src.ram[0]);
  ram.fill(3, 0, 2 * STEP);
  new Uint8Array(src.written).fill(1, 0, 32);
  const { s, out } = sender(src);
  s.sync();
  s.markAll();
  assert.equal(s.pending, 32, "the bulk stage marks the pages in use, not the cap's");
  // The size now is said before the first page; nothing past it is sent.
  assert.equal(await s.send(1 << 20), true);
  await s.flush();
  const bulk = out();
  assert.deepEqual(frames(bulk), [`RAM_USED ${2 * STEP}`, "PAGE_RUN 0"]);
  assert.equal(s.pending, 0);
  await feed(loader, bulk);
  // The guest grows by two steps and writes a page in the new part (its dirty log marks it).
  src.ram[0].grow(4 * STEP);
  ram[3 * STEP + 5] = 9;
  new Uint8Array(src.dirty)[(3 * STEP) / PAGE_SIZE] = 1;
  s.sync();
  assert.equal(await s.send(1 << 20), true);
  await s.flush();
  const pass = out();
  assert.deepEqual(frames(pass), [`RAM_USED ${4 * STEP}`, `PAGE_RUN ${(3 * STEP) / PAGE_SIZE}`]);
  // It grows again without writing: the completion says the final size.
  src.ram[0].grow(5 * STEP);
  await s.announceGrowth();
  await s.flush();
  const done = out();
  assert.deepEqual(frames(done), [`RAM_USED ${5 * STEP}`]);
  await feed(loader, concat([pass, done]));
  assert.equal(usedBytes(dst, 0), usedBytes(src, 0));
  assert.deepEqual(new Uint8Array(dst.ram[0]), ram);
  assert.equal(loader.unseen(), 0);
});
