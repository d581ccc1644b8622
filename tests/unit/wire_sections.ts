/**
 * Wire v2's sections without sockets (docs/wire-format.md, "Section records"): a migration's
 * stream carries RAM in "ram" records and the device state in one "device" SECTION_FULL; the
 * destination refuses an unknown section id, another name for an id and an unsupported
 * section version, a version 1 stream (and says why to the source), and truncated or
 * oversized section records; the pending bytes of every section, summed, decide the
 * switchover.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { DEVICE_SECTION, DeviceSection } from "../../domain/engine/device_section.ts";
import { runDestination } from "../../domain/engine/dest_run.ts";
import {
  canSwitchOver,
  type LiveSection,
  type PendingBytes,
  pendingEstimate,
  pendingExact,
} from "../../domain/engine/live_section.ts";
import { PeerReason } from "../../domain/engine/peer_reason.ts";
import { RAM_SECTION } from "../../domain/engine/ram_section.ts";
import { createStats } from "../../domain/engine/stats.ts";
import type { Channel } from "../../domain/ports.ts";
import {
  decodeFrameHeader,
  decodeSectionEnd,
  decodeSectionFull,
  decodeSectionStart,
  encodeSectionFull,
  encodeSectionStart,
  FRAME_HEADER_SIZE,
  FrameType,
  SectionKind,
  STREAM_HEADER_SIZE,
  WireError,
} from "../../domain/wire/mod.ts";
import { concat } from "../helpers/bytes.ts";
import { fakeMain, loadStream, migrateInProcess } from "../helpers/engine_pair.ts";
import {
  assertClearError,
  deviceRecord,
  hostileDestination,
  idleDeviceState,
  validFrames,
} from "../helpers/hostile_streams.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const FAILED = "load of migration failed: ";

/** Loads `bytes` into `dst`; the one failure text, or null when it loaded. */
async function load(dst: Machine, bytes: Uint8Array): Promise<string | null> {
  const [a, b] = memoryChannelPair(256 << 10);
  const { main, done } = loadStream(dst, b);
  const writing = (async () => {
    try {
      for (let off = 0; off < bytes.length;) off += await a.write(bytes.subarray(off));
      await a.closeWrite();
    } catch { /* the loader stopped reading */ }
  })();
  try {
    const ok = await done;
    if (ok) return null;
    const f = main.errors.filter((e) => e.startsWith(FAILED));
    assert.equal(f.length, 1, `one failure message: ${JSON.stringify(main.errors)}`);
    return f[0].slice(FAILED.length);
  } finally {
    a.close();
    b.close();
    await writing;
  }
}

/** A valid precopy stream with frame `i` replaced by `frame`. */
function withFrame(match: (f: Uint8Array) => boolean, frame: Uint8Array): Uint8Array {
  const f = validFrames();
  const i = f.findIndex((x, k) => k > 0 && match(x));
  assert.ok(i > 0, "the frame to replace is in the stream");
  f[i] = frame;
  return concat(f);
}

/** Splits a stream (header first) into its frames' types and payloads. */
function framesOf(stream: Uint8Array): { type: number; payload: Uint8Array }[] {
  const out = [];
  let off = STREAM_HEADER_SIZE;
  while (off < stream.length) {
    const h = decodeFrameHeader(stream, off);
    const start = off + FRAME_HEADER_SIZE;
    out.push({ type: h.type, payload: stream.subarray(start, start + h.length) });
    off = start + h.length;
  }
  return out;
}

/** `ch`, with every byte written to it also kept in `into`. */
function recording(ch: Channel, into: Uint8Array[]): Channel {
  return new Proxy(ch, {
    get(target, prop) {
      if (prop === "write") {
        return async (p: Uint8Array) => {
          const n = await target.write(p);
          into.push(p.slice(0, n));
          return n;
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

Deno.test("wire sections: a migration carries RAM in 'ram' records and the device state whole", async () => {
  const src = await Machine.create({
    blocks: [{ name: "pc.ram", size: 2 << 20 }],
    fill: "random",
    workload: { kind: "increment" },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks: [{ name: "pc.ram", size: 2 << 20 }],
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  try {
    const written: Uint8Array[] = [];
    const { ok, d } = await migrateInProcess(src, dst, {
      autostart: false,
      wrap: (ch) => recording(ch, written),
    });
    assert.equal(ok, true, d.errors.join("; "));
    assert.deepEqual((await src.digest("now")).blocks, (await dst.digest("now")).blocks);
    const stream = concat(written);
    assert.deepEqual([...stream.subarray(4, 6)], [0, 3], "stream version 3");
    const frames = framesOf(stream);
    const starts = frames.filter((f) => f.type === FrameType.SECTION_START)
      .map((f) => decodeSectionStart(f.payload));
    const ends = frames.filter((f) => f.type === FrameType.SECTION_END)
      .map((f) => decodeSectionEnd(f.payload));
    assert.ok(starts.length >= 3, "setup, at least one pass, complete");
    for (const s of starts) assert.deepEqual([s.id, s.name, s.version], [1, "ram", 1]);
    assert.deepEqual(ends, starts.map(({ kind, pass, id }) => ({ kind, pass, id })));
    assert.deepEqual(
      [starts[0].kind, starts.at(-1)!.kind],
      [SectionKind.SETUP, SectionKind.COMPLETE],
    );
    const full = frames.filter((f) => f.type === FrameType.SECTION_FULL)
      .map((f) => decodeSectionFull(f.payload));
    assert.equal(full.length, 1, "the device state once");
    assert.deepEqual([full[0].id, full[0].name, full[0].version], [2, "device", 1]);
    assert.equal(full[0].body.length, 104, "the vCPU's registers (device_state.ts)");
    const types = frames.map((f) => f.type);
    const lastEnd = types.lastIndexOf(FrameType.SECTION_END);
    assert.ok(types.indexOf(FrameType.SECTION_FULL) > lastEnd, "after the RAM's last record");
    assert.equal(types.at(-1), FrameType.EOF);
  } finally {
    await src.dispose();
    await dst.dispose();
  }
});

Deno.test("wire sections: an unknown section id, another name or an unsupported version is refused", async () => {
  const dst = await hostileDestination();
  const isStart = (f: Uint8Array) => f[0] === FrameType.SECTION_START;
  const isFull = (f: Uint8Array) => f[0] === FrameType.SECTION_FULL;
  const device = idleDeviceState();
  const cases: [Uint8Array, string][] = [
    [
      withFrame(isStart, encodeSectionStart(SectionKind.SETUP, 0, { ...RAM_SECTION, id: 7 })),
      "migration stream: unknown section id 7",
    ],
    [
      withFrame(isFull, encodeSectionFull({ ...DEVICE_SECTION, id: 7 }, device)),
      "migration stream: unknown section id 7",
    ],
    [
      withFrame(isStart, encodeSectionStart(SectionKind.SETUP, 0, { ...RAM_SECTION, version: 3 })),
      "migration stream: section 'ram' version 3 not supported (this agent loads 1)",
    ],
    [
      withFrame(isFull, encodeSectionFull({ ...DEVICE_SECTION, version: 2 }, device)),
      "migration stream: section 'device' version 2 not supported (this agent loads 1)",
    ],
    [
      withFrame(
        isStart,
        encodeSectionStart(SectionKind.SETUP, 0, { ...RAM_SECTION, name: "disk" }),
      ),
      "migration stream: section id 1 is 'ram' here, the source calls it 'disk'",
    ],
    [
      withFrame(isFull, encodeSectionFull({ ...DEVICE_SECTION, id: 1, name: "ram" }, device)),
      "migration stream: section 'ram' is live, not sent whole",
    ],
  ];
  try {
    for (const [bytes, message] of cases) {
      assert.equal(await load(dst, bytes), message);
      assert.equal(dst.runstate, "inmigrate", "the guest never ran");
    }
    assert.equal(await load(dst, concat(validFrames())), null, "the same stream, unmutated");
  } finally {
    await dst.dispose();
  }
});

Deno.test("wire sections: a version 1 stream is refused naming both versions, and the source hears why", async () => {
  const dst = await hostileDestination();
  try {
    const v1 = concat(validFrames());
    v1[5] = 1;
    const message = "unsupported migration stream version 1 (this side speaks version 3)";
    assert.equal(await load(dst, v1), message);
    // Over a socket the destination sends its reason back; the source's error-desc says it.
    const [a, b] = memoryChannelPair(256 << 10);
    const main = fakeMain("destination");
    const done = runDestination({
      guest: dst.shared,
      stats: createStats(),
      link: main.link,
      autostart: false,
      twoWay: true,
      awaitRecovery: () => Promise.reject(new WireError("no recovery channel in this test")),
      onChannel: () => {},
    }, b);
    const reason = new PeerReason(() => {});
    const listening = reason.listen(a);
    await a.write(v1.subarray(0, 64));
    assert.equal(await done, false);
    await listening;
    const e = await reason.explain(new Error("Broken pipe (os error 32)"));
    assert.equal((e as Error).message, `destination refused: ${message}`);
    a.close();
    b.close();
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await dst.dispose();
  }
});

Deno.test("wire sections: truncated, extended or oversized section records are refused clearly", async () => {
  const dst = await hostileDestination();
  const base = validFrames();
  const records = base.flatMap((f, i) =>
    i > 0 &&
      ([FrameType.SECTION_START, FrameType.SECTION_END, FrameType.SECTION_FULL] as number[])
        .includes(f[0])
      ? [i]
      : []
  );
  try {
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...records),
        fc.constantFrom("truncate", "extend", "oversize"),
        fc.nat({ max: 0xffffffff }),
        async (i, how, n) => {
          const f = base.slice();
          const frame = f[i];
          const length = frame.length - FRAME_HEADER_SIZE;
          let mutated: Uint8Array;
          if (how === "truncate") {
            const keep = n % length; // 0 .. length - 1 payload bytes
            mutated = frame.slice(0, FRAME_HEADER_SIZE + keep);
            new DataView(mutated.buffer).setUint32(1, keep);
          } else if (how === "extend") {
            const more = 1 + (n % 300);
            mutated = concat([frame, new Uint8Array(more).fill(0x5a)]);
            new DataView(mutated.buffer, mutated.byteOffset).setUint32(1, length + more);
          } else {
            // The length says more than the record has: what follows is read as its payload.
            mutated = frame.slice();
            new DataView(mutated.buffer).setUint32(1, length + 1 + (n % (0xffffffff - length)));
          }
          f[i] = mutated;
          const failure = await load(dst, concat(f));
          assert.notEqual(failure, null, `${how} of frame ${i} loaded`);
          assertClearError(failure, `${how} of frame ${i} (seed ${seed})`);
          assert.equal(dst.runstate, "inmigrate");
        },
      ),
      { seed, numRuns: 60 },
    );
  } finally {
    await dst.dispose();
  }
});

Deno.test("wire sections: section decoders refuse what their lengths do not cover", () => {
  const full = deviceRecord(idleDeviceState()).subarray(FRAME_HEADER_SIZE);
  assert.throws(() => decodeSectionFull(full.subarray(0, 9)), /at least 10/);
  assert.throws(() => decodeSectionFull(full.subarray(0, 12)), /shorter than its 6-byte name/);
  const start = encodeSectionStart(1, 0, RAM_SECTION).subarray(FRAME_HEADER_SIZE);
  assert.throws(() => decodeSectionStart(start.subarray(0, start.length - 1)), /expected 17/);
  const blank = start.slice();
  blank[14] = 0x20;
  assert.throws(() => decodeSectionStart(blank), /non-printable byte 0x20/);
  assert.throws(() => decodeSectionEnd(new Uint8Array(10)), WireError);
});

/** A section that reports `pending` (and counts its exact calls). */
function fakeSection(id: number, pending: PendingBytes): LiveSection & { exact: number } {
  return {
    id,
    name: `fake${id}`,
    version: 1,
    kind: "live",
    exact: 0,
    setup: () => Promise.resolve(),
    pendingEstimate: () => pending,
    pendingExact() {
      this.exact++;
      return pending;
    },
    iterate: () => Promise.resolve(true),
    completePrecopy: () => Promise.resolve(),
    completePostcopy: () => Promise.resolve(),
    cleanup: () => {},
  };
}

Deno.test("sections: the pending bytes of every section, summed, decide the switchover", () => {
  const ram = fakeSection(1, { mustPrecopy: 600, postcopyable: 0, wire: 600 });
  const disk = fakeSection(3, { mustPrecopy: 0, postcopyable: 500, wire: 500 });
  const device = new DeviceSection({
    saveDeviceState: () => new Uint8Array(96),
    loadDeviceState: () => {},
  });
  const threshold = 1000;
  assert.equal(canSwitchOver(pendingEstimate([ram, device]), threshold), true, "RAM alone");
  const both = pendingEstimate([ram, disk, device]);
  assert.deepEqual(both, { mustPrecopy: 600, postcopyable: 500, wire: 1100 });
  assert.equal(canSwitchOver(both, threshold), false, "RAM and the disk together");
  assert.deepEqual(pendingExact([ram, disk, device]), both);
  assert.deepEqual([ram.exact, disk.exact], [1, 1], "each section brought up to date once");
  assert.equal(canSwitchOver(pendingExact([disk]), 0), false);
  assert.equal(canSwitchOver(pendingExact([device]), 0), true, "nothing left: always");
});
