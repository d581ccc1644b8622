/**
 * Test helper for hostile-stream tests: builds valid Ferry migration streams with the
 * wire encoders (a small two-block guest), fast-check arbitraries that mutate them
 * (flipped bytes, truncation, huge lengths, runs outside a block, unknown frame types,
 * dropped / duplicated / inserted frames, garbage after the header), and the check that
 * an `error-desc` reads as a clear message rather than a leaked JavaScript error.
 *
 * @module
 */
import fc from "fast-check";
import { encodeDeviceState } from "../../adapters/memory/device_state.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { resolveWorkload } from "../../adapters/memory/workload_spec.ts";
import { DEVICE_SECTION } from "../../domain/engine/device_section.ts";
import { RAM_SECTION } from "../../domain/engine/ram_section.ts";
import {
  encodeConfig,
  encodeEof,
  encodeGlobalState,
  encodePageRun,
  encodeSectionEnd,
  encodeSectionFull,
  encodeSectionStart,
  encodeStreamHeader,
  encodeZeroRun,
  FRAMES,
  FrameType,
  SectionKind,
} from "../../domain/wire/mod.ts";
import {
  encodeDiscard,
  encodeEmpty,
  encodePackage,
  encodeU32Frame,
} from "../../domain/wire/postcopy.ts";
import { concat } from "./bytes.ts";

/** Page size of every stream built here. */
export const PAGE = 4096;
/** The guest these streams carry: two blocks, 1 MiB in all. */
export const HOSTILE_LAYOUT: readonly { name: string; size: number }[] = [
  { name: "pc.ram", size: 768 << 10 },
  { name: "vga", size: 256 << 10 },
];
/** `main.ts` flags for an agent with {@link HOSTILE_LAYOUT}. */
export const HOSTILE_AGENT_ARGS = ["--ram", "768K", "--ram-block", "vga=256K"];
/** Total bytes of {@link HOSTILE_LAYOUT}. */
export const HOSTILE_RAM = HOSTILE_LAYOUT.reduce((n, b) => n + b.size, 0);

/** A paused incoming guest of {@link HOSTILE_LAYOUT}, zero-filled: what hostile streams load into. */
export function hostileDestination(): Promise<Machine> {
  return Machine.create({
    blocks: HOSTILE_LAYOUT.map((b) => ({ ...b })),
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
}
/**
 * A smaller guest for mass runs (tests/helpers/hostile_worker.ts): the same frame shapes
 * (data and zero runs, a complete section, postcopy) in a stream of ~50 KiB instead of ~0.5 MiB.
 */
export const SMALL_LAYOUT: readonly { name: string; size: number }[] = [
  { name: "pc.ram", size: 64 << 10 },
  { name: "vga", size: 32 << 10 },
];

/** The layout's RAM bytes. */
function ramOf(layout: readonly { size: number }[]): number {
  return layout.reduce((n, b) => n + b.size, 0);
}

/** How to build a valid stream. */
export interface StreamShape {
  /** Open the return path and PING (as a source with return-path does). */
  returnPath?: boolean;
  /** Postcopy: advise, then a package (listen, state, device, run) before the last pages. */
  postcopy?: boolean;
  /** End with EOF (default true); without it no mutation can make a stream complete. */
  eof?: boolean;
  /** The guest (default {@link HOSTILE_LAYOUT}). */
  layout?: readonly { name: string; size: number }[];
}

/** A valid device state for an idle guest of `ram` bytes (default {@link HOSTILE_RAM}). */
export function idleDeviceState(ram = HOSTILE_RAM): Uint8Array {
  const prng = [0x9e3779b9, 0x243f6a88, 0xb7e15162, 0x01234567];
  return encodeDeviceState(resolveWorkload({ kind: "idle" }, ram, prng), ram);
}

/** Page `p` of block `b` holds data (runs of 8 pages) or zeros. */
function pageHasData(b: number, p: number): boolean {
  return ((p >> 3) + b) % 2 === 1;
}

function pageBytes(b: number, first: number, count: number): Uint8Array {
  const data = new Uint8Array(count * PAGE);
  for (let i = 0; i < data.length; i++) data[i] = (b * 131 + first * 7 + i * 13) & 0xff;
  return data;
}

/** Every page of every block as ZERO_RUN / PAGE_RUN frames. */
function ramFrames(layout: readonly { size: number }[]): Uint8Array[] {
  const frames: Uint8Array[] = [];
  layout.forEach((blk, b) => {
    const pages = blk.size / PAGE;
    for (let p = 0; p < pages;) {
      const data = pageHasData(b, p);
      let n = 1;
      while (p + n < pages && n < 256 && pageHasData(b, p + n) === data) n++;
      frames.push(data ? encodePageRun(b, p, PAGE, pageBytes(b, p, n)) : encodeZeroRun(b, p, n));
      p += n;
    }
  });
  return frames;
}

/** A SECTION_START (`type` SECTION_START) or SECTION_END record of the RAM section. */
export function ramRecord(type: number, kind: number, pass: number): Uint8Array {
  return type === FrameType.SECTION_START
    ? encodeSectionStart(kind, pass, RAM_SECTION)
    : encodeSectionEnd(kind, pass, RAM_SECTION.id);
}

/** The device state's SECTION_FULL record around `bytes`. */
export function deviceRecord(bytes: Uint8Array): Uint8Array {
  return encodeSectionFull(DEVICE_SECTION, bytes);
}

/** A valid stream as frames; `frames[0]` is the 8-byte stream header. */
export function validFrames(shape: StreamShape = {}): Uint8Array[] {
  const section = ramRecord;
  const layout = shape.layout ?? HOSTILE_LAYOUT;
  const device = deviceRecord(idleDeviceState(ramOf(layout)));
  const f: Uint8Array[] = [encodeStreamHeader(), encodeConfig(PAGE, layout)];
  if (shape.returnPath || shape.postcopy) {
    f.push(encodeEmpty(FrameType.OPEN_RETURN_PATH), encodeU32Frame(FrameType.PING, 1));
  }
  if (shape.postcopy) f.push(encodeU32Frame(FrameType.POSTCOPY_ADVISE, PAGE));
  f.push(section(FrameType.SECTION_START, SectionKind.SETUP, 0));
  f.push(section(FrameType.SECTION_END, SectionKind.SETUP, 0));
  f.push(section(FrameType.SECTION_START, SectionKind.ITERATE, 1));
  const ram = ramFrames(layout);
  if (shape.postcopy) {
    // Half the RAM in precopy; the rest after the package, as postcopy background pages.
    const half = ram.length >> 1;
    f.push(...ram.slice(0, half));
    f.push(section(FrameType.SECTION_END, SectionKind.ITERATE, 1));
    f.push(...encodeDiscard(0, [{ first: 0, count: 4 }]));
    f.push(encodePackage([
      encodeEmpty(FrameType.POSTCOPY_LISTEN),
      encodeGlobalState("running"),
      device,
      encodeU32Frame(FrameType.PING, 3),
      encodeEmpty(FrameType.POSTCOPY_RUN),
    ]));
    // Postcopy pages travel in a section too.
    f.push(section(FrameType.SECTION_START, SectionKind.ITERATE, 2));
    f.push(...ram.slice(half), encodePageRun(0, 0, PAGE, pageBytes(0, 0, 4)));
    f.push(section(FrameType.SECTION_END, SectionKind.ITERATE, 2));
  } else {
    f.push(...ram);
    f.push(section(FrameType.SECTION_END, SectionKind.ITERATE, 1));
    f.push(section(FrameType.SECTION_START, SectionKind.COMPLETE, 2));
    f.push(encodePageRun(0, 8, PAGE, pageBytes(0, 8, 2)));
    f.push(section(FrameType.SECTION_END, SectionKind.COMPLETE, 2));
    f.push(encodeGlobalState("running"), device);
  }
  if (shape.eof ?? true) f.push(encodeEof());
  return f;
}

/** A frame-level mutation; frame indices are taken modulo the frame count (never the header). */
export type FrameOp =
  | { op: "length"; frame: number; value: number }
  | { op: "type"; frame: number; value: number }
  | { op: "run"; frame: number; field: "block" | "firstPage" | "count"; value: number }
  | { op: "drop"; frame: number }
  | { op: "dup"; frame: number }
  | { op: "swap"; a: number; b: number }
  | { op: "insert"; frame: number; bytes: Uint8Array };

/** A byte-level mutation of the whole stream; `at` is taken modulo its length. */
export type ByteOp =
  | { op: "flip"; at: number; bit: number }
  | { op: "set"; at: number; value: number }
  | { op: "truncate"; at: number }
  | { op: "garbage"; at: number; bytes: Uint8Array };

/** One hostile stream: a valid base, mutated. */
export interface Mutation {
  frameOps: FrameOp[];
  byteOps: ByteOp[];
}

const BIG = [0xffffffff, 0x80000000, 0x7fffffff, 0x01000000, 67108875, 65537, 1 << 20];

/** Lengths a hostile peer likes: huge, off by one around the table's bounds, small. */
const hostileLength = fc.oneof(
  fc.constantFrom(...BIG),
  fc.constantFrom(
    ...Object.values(FRAMES).flatMap((s) =>
      [s.fixed, s.min, s.max].filter((x): x is number => x !== undefined).flatMap((x) => [
        x - 1,
        x,
        x + 1,
      ])
    ),
  ).filter((x) => x >= 0),
  fc.nat({ max: 0xffffffff }),
);

/** Types: unknown codes, reserved codes, and every known code (a known type out of place). */
const hostileType = fc.oneof(
  fc.integer({ min: 0, max: 255 }),
  fc.constantFrom(0x00, 0x09, 0x0f, 0x19, 0x2f, 0x33, 0x40, 0x7f, 0xff),
  fc.constantFrom(...Object.keys(FRAMES).map(Number)),
);

const runValue = fc.oneof(
  fc.constantFrom(
    0,
    1,
    2,
    255,
    256,
    257,
    1023,
    1024,
    1025,
    0xffff,
    0xffffffff,
    0xfffffffe,
    0x7fffffff,
  ),
  fc.nat({ max: 0xffffffff }),
);

/** A random frame: any type, a hostile or honest length, a short payload. */
const randomFrame = fc.record({
  type: hostileType,
  length: fc.oneof(hostileLength, fc.nat({ max: 64 })),
  payload: fc.uint8Array({ maxLength: 64 }),
}).map(({ type, length, payload }) => {
  const b = new Uint8Array(5 + payload.length);
  const v = new DataView(b.buffer);
  v.setUint8(0, type);
  v.setUint32(1, length);
  b.set(payload, 5);
  return b;
});

const frameOp: fc.Arbitrary<FrameOp> = fc.oneof(
  fc.record({ op: fc.constant("length" as const), frame: fc.nat(), value: hostileLength }),
  fc.record({ op: fc.constant("type" as const), frame: fc.nat(), value: hostileType }),
  fc.record({
    op: fc.constant("run" as const),
    frame: fc.nat(),
    field: fc.constantFrom("block" as const, "firstPage" as const, "count" as const),
    value: runValue,
  }),
  fc.record({ op: fc.constant("drop" as const), frame: fc.nat() }),
  fc.record({ op: fc.constant("dup" as const), frame: fc.nat() }),
  fc.record({ op: fc.constant("swap" as const), a: fc.nat(), b: fc.nat() }),
  fc.record({ op: fc.constant("insert" as const), frame: fc.nat(), bytes: randomFrame }),
);

const byteOp: fc.Arbitrary<ByteOp> = fc.oneof(
  fc.record({ op: fc.constant("flip" as const), at: fc.nat(), bit: fc.nat({ max: 7 }) }),
  fc.record({ op: fc.constant("set" as const), at: fc.nat(), value: fc.nat({ max: 255 }) }),
  fc.record({ op: fc.constant("truncate" as const), at: fc.nat() }),
  fc.record({
    op: fc.constant("garbage" as const),
    at: fc.nat(),
    bytes: fc.uint8Array({ minLength: 1, maxLength: 4096 }),
  }),
);

/** One to four mutations, frame-level and byte-level. */
export const mutationArb: fc.Arbitrary<Mutation> = fc.record({
  frameOps: fc.array(frameOp, { maxLength: 3 }),
  byteOps: fc.array(byteOp, { maxLength: 2 }),
}).filter((m) => m.frameOps.length + m.byteOps.length > 0);

/** Where a run header's fields sit in a ZERO_RUN / PAGE_RUN frame. */
const RUN_FIELD = { block: [5, 2], firstPage: [7, 4], count: [11, 4] } as const;

/**
 * Applies `m` to `base` (frames, header first). With `keepHeader`, byte-level mutations never
 * touch the 8-byte stream header (so the stream is taken for a migration and fails inside it).
 */
export function applyMutation(base: readonly Uint8Array[], m: Mutation, keepHeader: boolean) {
  const frames: Uint8Array[] = base.map((f) => f.slice());
  const pick = (i: number) => 1 + (i % (frames.length - 1));
  for (const op of m.frameOps) {
    if (frames.length < 2) break;
    const i = pick("frame" in op ? op.frame : op.a);
    const f = frames[i];
    const v = new DataView(f.buffer, f.byteOffset, f.length);
    if (op.op === "length" && f.length >= 5) v.setUint32(1, op.value >>> 0);
    else if (op.op === "type" && f.length >= 1) v.setUint8(0, op.value);
    else if (op.op === "run" && (f[0] === FrameType.ZERO_RUN || f[0] === FrameType.PAGE_RUN)) {
      const [off, size] = RUN_FIELD[op.field];
      if (f.length < off + size) continue; // an inserted frame too short to have the field
      if (size === 2) v.setUint16(off, op.value & 0xffff);
      else v.setUint32(off, op.value >>> 0);
    } else if (op.op === "drop") frames.splice(i, 1);
    else if (op.op === "dup") frames.splice(i, 0, f.slice());
    else if (op.op === "swap") [frames[i], frames[pick(op.b)]] = [frames[pick(op.b)], frames[i]];
    else if (op.op === "insert") frames.splice(i, 0, op.bytes);
  }
  let bytes = concat(frames);
  const floor = keepHeader ? 8 : 0;
  for (const op of m.byteOps) {
    if (bytes.length <= floor) break;
    const at = floor + (op.at % (bytes.length - floor));
    if (op.op === "flip") bytes[at] ^= 1 << op.bit;
    else if (op.op === "set") bytes[at] = op.value;
    else if (op.op === "truncate") bytes = bytes.slice(0, Math.max(floor, at));
    else bytes = concat([bytes.subarray(0, at), op.bytes]);
  }
  return bytes;
}

/** Texts that mean the agent leaked a JavaScript error instead of naming the problem. */
const LEAKED =
  /TypeError|RangeError|ReferenceError|SyntaxError|undefined|NaN|\[object |Cannot read|is not a function|out of bounds|Invalid typed array|Maximum call stack|Array buffer allocation|not consumed|cannot consume|readPayload\(|readBytes\(/;

/** Throws unless `desc` is a clear, bounded, human message (no leaked JS error). */
export function assertClearError(desc: unknown, context: string): void {
  if (typeof desc !== "string" || desc.length < 12 || desc.length > 400 || LEAKED.test(desc)) {
    throw new Error(`unclear error-desc ${JSON.stringify(desc)} for ${context}`);
  }
}

/** A process's resident memory in MiB (read through `cat`: Deno wants -A for /proc). */
export async function rssMiB(pid: number): Promise<number> {
  const out = await new Deno.Command("cat", { args: [`/proc/${pid}/status`] }).output();
  const m = /VmRSS:\s+(\d+) kB/.exec(new TextDecoder().decode(out.stdout));
  if (!m) throw new Error(`no VmRSS for process ${pid}`);
  return Number(m[1]) / 1024;
}

/** Short description of a mutation for failure messages. */
export function describeMutation(m: Mutation): string {
  return JSON.stringify(m, (_k, v) => v instanceof Uint8Array ? `<${v.length} bytes>` : v);
}
