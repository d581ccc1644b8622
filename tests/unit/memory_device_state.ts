import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeDeviceState,
  DEVICE_STATE_BYTES,
  encodeDeviceState,
} from "../../adapters/memory/device_state.ts";
import { allocateGuest } from "../../adapters/memory/guest_ram.ts";
import { DeviceStateError, initControl } from "../../adapters/memory/vcpu_control.ts";
import type { WorkloadRegs } from "../../adapters/memory/workload.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const RAM = 64 << 20;
const PAGE = 4096;

function incrementRegs(over: Partial<WorkloadRegs> = {}): WorkloadRegs {
  return {
    kind: "increment",
    booted: true,
    start: 1 << 20,
    end: 16 << 20,
    cursor: 3 << 20,
    passes: 17,
    pagesWritten: 123456789,
    rate: 0,
    hot: 0,
    prng: [1, 0xdeadbeef, 3, 0xffffffff],
    nextSeq: 42,
    clock: false,
    ...over,
  };
}

const prngArb = fc.array(fc.nat({ max: 0xffffffff }), { minLength: 4, maxLength: 4 })
  .filter((w) => w.some((x) => x !== 0));

const regsArb: fc.Arbitrary<WorkloadRegs> = fc.oneof(
  fc.record({
    kind: fc.constant("idle" as const),
    booted: fc.constant(false),
    start: fc.constant(0),
    end: fc.constant(0),
    cursor: fc.constant(0),
    passes: fc.nat(),
    pagesWritten: fc.maxSafeNat(),
    rate: fc.constant(0),
    hot: fc.constant(0),
    prng: prngArb,
    nextSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    clock: fc.constant(false),
  }),
  fc.tuple(fc.nat(RAM / PAGE - 1), fc.nat(RAM / PAGE - 1), fc.nat(RAM / PAGE)).chain(
    ([a, b, c]) => {
      const start = Math.min(a, b), end = Math.max(a, b) + 1;
      const cursor = start + (c % (end - start));
      return fc.record({
        kind: fc.constant("increment" as const),
        booted: fc.boolean(),
        start: fc.constant(start * PAGE),
        end: fc.constant(end * PAGE),
        cursor: fc.constant(cursor * PAGE),
        passes: fc.maxSafeNat(),
        pagesWritten: fc.maxSafeNat(),
        rate: fc.constant(0),
        hot: fc.constant(0),
        prng: prngArb,
        nextSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
        clock: fc.constant(false),
      });
    },
  ),
  fc.record({
    kind: fc.constant("random" as const),
    booted: fc.constant(false),
    start: fc.constant(0),
    end: fc.constant(0),
    cursor: fc.constant(0),
    passes: fc.constant(0),
    pagesWritten: fc.maxSafeNat(),
    rate: fc.double({ min: 0.001, max: 1e9, noNaN: true }),
    hot: fc.double({ min: 1e-9, max: 1, noNaN: true }),
    prng: prngArb,
    nextSeq: fc.integer({ min: 1, max: Number.MAX_SAFE_INTEGER }),
    clock: fc.constant(false),
  }),
);

Deno.test("device state: encode then decode is the identity (property)", () => {
  fc.assert(
    fc.property(regsArb, (regs) => {
      const bytes = encodeDeviceState(regs, RAM);
      assert.equal(bytes.length, DEVICE_STATE_BYTES);
      assert.deepEqual(decodeDeviceState(bytes, RAM), { ...regs });
    }),
    { seed },
  );
});

Deno.test("device state: documented layout (big-endian fields at fixed offsets)", () => {
  const bytes = encodeDeviceState(incrementRegs(), RAM);
  assert.equal(new TextDecoder().decode(bytes.subarray(0, 4)), "FVCP");
  assert.deepEqual([...bytes.subarray(4, 12)], [0, 2, 0, 104, 1, 1, 0, 0]);
  const v = new DataView(bytes.buffer);
  assert.equal(v.getUint32(12), 4096);
  assert.equal(Number(v.getBigUint64(16)), RAM);
  assert.equal(Number(v.getBigUint64(40)), 3 << 20);
  assert.equal(v.getUint32(84), 0xdeadbeef);
  assert.equal(Number(v.getBigUint64(96)), 42);
});

Deno.test("device state: version 1 (96 bytes, no output seq) still loads, seq from 1", () => {
  const bytes = encodeDeviceState(incrementRegs(), RAM).slice(0, 96);
  const v = new DataView(bytes.buffer);
  v.setUint16(4, 1);
  v.setUint16(6, 96);
  assert.deepEqual(decodeDeviceState(bytes, RAM), incrementRegs({ nextSeq: 1 }));
});

function patched(edit: (v: DataView, b: Uint8Array) => void): Uint8Array {
  const bytes = encodeDeviceState(incrementRegs(), RAM);
  edit(new DataView(bytes.buffer), bytes);
  return bytes;
}

Deno.test("device state: malformed inputs throw DeviceStateError with a clear message", () => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["empty", new Uint8Array(0), /^device state: truncated: 0 bytes$/],
    [
      "truncated",
      encodeDeviceState(incrementRegs(), RAM).subarray(0, 50),
      /50 bytes, expected 104 \(truncated\)/,
    ],
    [
      "trailing",
      new Uint8Array([...encodeDeviceState(incrementRegs(), RAM), 0]),
      /105 bytes, expected 104/,
    ],
    ["magic", patched((v) => v.setUint32(0, 0x51455646)), /bad magic 0x51455646/],
    ["version", patched((v) => v.setUint16(4, 3)), /version 3 not supported \(expected 1 or 2\)/],
    ["length field", patched((v) => v.setUint16(6, 95)), /length field 95, expected 104/],
    ["output seq 0", patched((v) => v.setBigUint64(96, 0n)), /output seq 0 out of range/],
    ["clock on increment", patched((v) => v.setUint8(9, 3)), /increment carries the clock flag/],
    ["kind", patched((v) => v.setUint8(8, 3)), /unknown workload kind 3/],
    ["flags", patched((v) => v.setUint8(9, 5)), /unknown flags 0x5/],
    ["reserved", patched((v) => v.setUint16(10, 1)), /reserved field is not zero/],
    [
      "page size",
      patched((v) => v.setUint32(12, 65536)),
      /page size 65536 differs from this machine's 4096/,
    ],
    [
      "RAM size",
      patched((v) => v.setBigUint64(16, 128n << 20n)),
      /RAM size 134217728 differs from this machine's 67108864 bytes/,
    ],
    [
      "range beyond RAM",
      patched((v) => v.setBigUint64(32, 0x9000000n)),
      /^device state: workload range 0x100000..0x9000000 outside RAM of 67108864 bytes$/,
    ],
    [
      "empty range",
      patched((v) => v.setBigUint64(32, 1n << 20n)),
      /workload range 0x100000..0x100000 outside RAM/,
    ],
    ["unaligned end", patched((v) => v.setBigUint64(32, (16n << 20n) - 1n)), /workload range/],
    [
      "cursor past end",
      patched((v) => v.setBigUint64(40, 16n << 20n)),
      /cursor 0x1000000 outside workload range 0x100000..0x1000000/,
    ],
    [
      "cursor before start",
      patched((v) => v.setBigUint64(40, 0n)),
      /cursor 0x0 outside workload range/,
    ],
    [
      "unaligned cursor",
      patched((v) => v.setBigUint64(40, (3n << 20n) + 1n)),
      /cursor 0x300001 outside/,
    ],
    [
      "huge counter",
      patched((v) => v.setBigUint64(56, 1n << 60n)),
      /pages written 1152921504606846976 out of range/,
    ],
    ["zero prng", patched((_v, b) => b.fill(0, 80, 96)), /PRNG state is all zero/],
    [
      "negative rate on increment",
      patched((v) => v.setFloat64(64, -5)),
      /increment rate -5 outside/,
    ],
    [
      "hot fraction on increment",
      patched((v) => v.setFloat64(72, 0.5)),
      /workload increment carries a hot fraction/,
    ],
    [
      "idle with range",
      patched((v) => v.setUint8(8, 0)),
      /workload idle carries an increment range/,
    ],
    [
      "random NaN rate",
      (() => {
        const b = encodeDeviceState({
          ...incrementRegs(),
          kind: "random",
          booted: false,
          start: 0,
          end: 0,
          cursor: 0,
          rate: 5,
          hot: 1,
        }, RAM);
        new DataView(b.buffer).setFloat64(64, NaN);
        return b;
      })(),
      /random rate NaN outside/,
    ],
    [
      "random hot 0",
      encodeDeviceState({
        ...incrementRegs(),
        kind: "random",
        booted: false,
        start: 0,
        end: 0,
        cursor: 0,
        rate: 5,
        hot: 0,
      }, RAM),
      /random hot fraction 0 outside \(0, 1\]/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    assert.throws(() => decodeDeviceState(bytes, RAM), (e: unknown) => {
      assert.ok(e instanceof DeviceStateError, `${name}: ${e}`);
      assert.match(e.message, message, name);
      return true;
    });
  }
});

Deno.test("device state: random bytes never decode into anything but a valid state (property)", () => {
  fc.assert(
    fc.property(fc.uint8Array({ maxLength: 120 }), fc.boolean(), (junk, withHeader) => {
      const bytes = withHeader && junk.length >= 8
        ? Uint8Array.from([
          ...encodeDeviceState(incrementRegs(), RAM).subarray(0, 8),
          ...junk.subarray(8),
        ])
        : junk;
      try {
        const regs = decodeDeviceState(bytes, RAM);
        // Whatever decodes must re-encode to the same bytes (no silent normalisation).
        assert.deepEqual(encodeDeviceState(regs, RAM), bytes);
      } catch (e) {
        assert.ok(e instanceof DeviceStateError, String(e));
      }
    }),
    { seed, numRuns: 2000 },
  );
});

Deno.test("VcpuControl.loadDeviceState: validates first; a bad state changes nothing", () => {
  const guest = allocateGuest([{ name: "pc.ram", size: RAM }]);
  const vcpu = initControl(guest, incrementRegs(), "inmigrate", RAM);
  const before = vcpu.saveDeviceState();
  const regsBefore = vcpu.registers();
  const hostile = [
    patched((v) => v.setBigUint64(40, 0x7000000n)),
    patched((v) => v.setUint16(4, 9)),
    new Uint8Array(0),
    crypto.getRandomValues(new Uint8Array(96)),
  ];
  for (const bytes of hostile) {
    assert.throws(() => vcpu.loadDeviceState(bytes), DeviceStateError);
    assert.deepEqual(vcpu.saveDeviceState(), before);
    assert.deepEqual(vcpu.registers(), regsBefore);
  }
  const other = incrementRegs({ cursor: 5 << 20, passes: 3, booted: false });
  vcpu.loadDeviceState(encodeDeviceState(other, RAM));
  assert.equal(vcpu.registers().cursor, 5 << 20);
  assert.equal(vcpu.registers().booted, false);
  assert.deepEqual(decodeDeviceState(vcpu.saveDeviceState(), RAM), other);
});

Deno.test("VcpuControl: a device state for another RAM size is refused", () => {
  const guest = allocateGuest([{ name: "pc.ram", size: RAM / 2 }]);
  const vcpu = initControl(guest, incrementRegs(), "inmigrate", RAM / 2);
  assert.throws(
    () => vcpu.loadDeviceState(encodeDeviceState(incrementRegs(), RAM)),
    /RAM size 67108864 differs from this machine's 33554432 bytes/,
  );
});
