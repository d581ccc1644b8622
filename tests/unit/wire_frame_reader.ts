import assert from "node:assert/strict";
import fc from "fast-check";
import type { Channel } from "../../domain/ports.ts";
import {
  decodeFrameHeader,
  decodeRunHeader,
  encodeConfig,
  encodeEof,
  encodeGlobalState,
  encodePageRun,
  encodeSectionEnd,
  encodeSectionFull,
  encodeSectionStart,
  encodeStreamHeader,
  encodeZeroRun,
  FRAME_HEADER_SIZE,
  FrameReader,
  FrameType,
  MIN_READER_BUFFER,
  putFrameHeader,
  putPageRunHeader,
  RUN_HEADER_SIZE,
  SectionKind,
  WireError,
} from "../../domain/wire/mod.ts";
import { concat } from "../helpers/bytes.ts";

/** The RAM and device sections' identities (domain/engine/ram_section.ts, device_section.ts). */
const RAM = { id: 1, name: "ram", version: 1 };
const DEV = { id: 2, name: "device", version: 1 };

const seed = Date.now();
console.log("fast-check seed", seed);

/** Deterministic PRNG (mulberry32) so chunk boundaries follow the fast-check seed. */
function prng(s: number): () => number {
  return () => {
    s = (s + 0x6d2b79f5) | 0;
    let t = Math.imul(s ^ (s >>> 15), 1 | s);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** An in-memory Channel that serves `data` in chunks of 1..maxChunk bytes, then `tail`. */
class MemChannel implements Channel {
  pos = 0;
  served = 0;
  #rand: () => number;
  constructor(
    readonly data: Uint8Array,
    readonly maxChunk: number,
    chunkSeed = 1,
    readonly endlessZeros = false,
  ) {
    this.#rand = prng(chunkSeed);
  }
  read(p: Uint8Array): Promise<number | null> {
    const left = this.data.length - this.pos;
    if (left <= 0 && !this.endlessZeros) return Promise.resolve(null);
    const want = 1 + Math.floor(this.#rand() * this.maxChunk);
    if (left <= 0) {
      const n = Math.min(p.length, want);
      p.fill(0, 0, n);
      this.served += n;
      return Promise.resolve(n);
    }
    const n = Math.min(p.length, want, left);
    p.set(this.data.subarray(this.pos, this.pos + n));
    this.pos += n;
    this.served += n;
    return Promise.resolve(n);
  }
  write(_p: Uint8Array): Promise<number> {
    return Promise.reject(new Error("read-only test channel"));
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

interface Got {
  type: number;
  payload: Uint8Array;
}

/** Frames as the encoder made them (type + payload copy), for comparison. */
function expected(frames: Uint8Array[]): Got[] {
  return frames.map((f) => ({ type: decodeFrameHeader(f).type, payload: f.slice(5) }));
}

/** Reads a whole stream the way the destination does; `rand` picks split/skip behaviour. */
async function readAll(r: FrameReader, rand: () => number = () => 0.5): Promise<Got[]> {
  const out: Got[] = [];
  await r.readStreamHeader();
  for (;;) {
    const h = await r.next();
    let payload: Uint8Array;
    if (h.type === FrameType.PAGE_RUN) {
      const head = (await r.readBytes(RUN_HEADER_SIZE)).slice();
      decodeRunHeader(head);
      const data = new Uint8Array(h.length - RUN_HEADER_SIZE);
      const cut = Math.floor(rand() * data.length);
      await r.readInto(data.subarray(0, cut));
      await r.readInto(data.subarray(cut));
      payload = concat([head, data]);
    } else if (rand() < 0.2) {
      await r.skip();
      payload = new Uint8Array(0); // skipped
    } else {
      payload = (await r.readPayload()).slice();
    }
    assert.equal(r.remaining, 0);
    out.push({ type: h.type, payload });
    if (h.type === FrameType.EOF) return out;
  }
}

/** A random but well-formed frame body (everything between CONFIG and EOF). */
function frameArb(pageSize: number, maxPages: number): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    fc.tuple(
      fc.nat({ max: 3 }),
      fc.nat({ max: 1000 }),
      fc.integer({ min: 1, max: maxPages }),
      fc.nat(),
    )
      .map(([block, first, count, salt]) => {
        const data = new Uint8Array(count * pageSize);
        for (let i = 0; i < data.length; i += 61) data[i] = (i + salt) & 0xff;
        return encodePageRun(block, first, pageSize, data);
      }),
    fc.tuple(fc.nat({ max: 3 }), fc.nat(), fc.integer({ min: 1, max: 1e6 }))
      .map(([b, f, c]) => encodeZeroRun(b, f, c)),
    fc.tuple(fc.integer({ min: 1, max: 3 }), fc.nat()).map(([k, p]) =>
      encodeSectionStart(k, p, RAM)
    ),
    // At most 64 KiB of payload (the name and its header included): read by readPayload.
    fc.uint8Array({ maxLength: 65536 - 15, size: "max" }).map((b) => encodeSectionFull(DEV, b)),
    fc.constantFrom("running", "paused", "finish-migrate").map(encodeGlobalState),
  );
}

function stream(pageSize: number, body: Uint8Array[]): { bytes: Uint8Array; frames: Uint8Array[] } {
  const frames = [
    encodeConfig(pageSize, [{ name: "pc.ram", size: 2 ** 30 }]),
    encodeSectionStart(SectionKind.SETUP, 0, RAM),
    ...body,
    encodeSectionEnd(SectionKind.SETUP, 0, RAM.id),
    encodeEof(),
  ];
  return { bytes: concat([encodeStreamHeader(), ...frames]), frames };
}

Deno.test("FrameReader over randomly chunked streams yields the encoded frames", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(frameArb(4096, 256), { maxLength: 12 }),
      fc.constantFrom(1, 7, 4096, 70000, 2 << 20),
      fc.constantFrom(MIN_READER_BUFFER, 200_000, 1 << 20),
      fc.nat(),
      async (body, maxChunk, bufferSize, chunkSeed) => {
        const { bytes, frames } = stream(4096, body);
        const rand = prng(chunkSeed ^ 0x5a5a);
        const r = new FrameReader(new MemChannel(bytes, maxChunk, chunkSeed), bufferSize);
        const got = await readAll(r, rand);
        const want = expected(frames);
        assert.equal(got.length, want.length);
        got.forEach((g, i) => {
          assert.equal(g.type, want[i].type);
          if (g.payload.length > 0 || want[i].payload.length === 0) {
            assert.deepEqual(g.payload, want[i].payload, `frame ${i}`);
          }
        });
        assert.equal(r.bytesRead, bytes.length);
      },
    ),
    { seed, numRuns: 60 },
  );
});

Deno.test("a stream truncated at any offset fails with 'migration stream truncated'", async () => {
  await fc.assert(
    fc.asyncProperty(
      fc.array(frameArb(1024, 2), { maxLength: 4 }).map((body) =>
        body.filter((f) => f.length < 3000)
      ),
      fc.constantFrom(1, 13, 1 << 20),
      async (body, maxChunk) => {
        const { bytes } = stream(1024, body);
        await readAll(new FrameReader(new MemChannel(bytes, maxChunk)));
        for (let cut = 0; cut < bytes.length; cut++) {
          const r = new FrameReader(new MemChannel(bytes.subarray(0, cut), maxChunk, cut));
          await assert.rejects(readAll(r, prng(cut)), (e: unknown) => {
            assert.ok(e instanceof WireError, `cut ${cut}: ${e}`);
            assert.match(e.message, /^migration stream truncated/);
            return true;
          });
        }
      },
    ),
    { seed, numRuns: 15 },
  );
});

Deno.test("huge or bad lengths are refused at the header, before any payload is read", async () => {
  const prefix = new Uint8Array(8 + FRAME_HEADER_SIZE);
  prefix.set(encodeStreamHeader());
  for (
    const [type, length] of [[FrameType.PAGE_RUN, 0xffffffff], [FrameType.SECTION_FULL, 2 ** 31]]
  ) {
    putFrameHeader(new DataView(prefix.buffer), 8, type, length);
    // The peer would happily send gigabytes; the reader must stop at the header.
    const ch = new MemChannel(prefix, 1 << 20, 1, true);
    const r = new FrameReader(ch, MIN_READER_BUFFER);
    await r.readStreamHeader();
    await assert.rejects(
      r.next(),
      (e: unknown) => e instanceof WireError && /exceeds/.test(e.message),
    );
    assert.ok(ch.served <= MIN_READER_BUFFER, `served ${ch.served}`);
  }
  // The largest legal PAGE_RUN header is accepted, but its data cannot go through readPayload.
  const big = new Uint8Array(8 + 15);
  big.set(encodeStreamHeader());
  putPageRunHeader(new DataView(big.buffer), 8, 0, 0, 256, 65536);
  const r = new FrameReader(new MemChannel(big, 1 << 20, 1, true));
  await r.readStreamHeader();
  assert.equal((await r.next()).length, 10 + 256 * 65536);
  await assert.rejects(r.readPayload(), (e: unknown) => !(e instanceof WireError));
  await r.readBytes(10);
  await r.skip(); // 16 MiB of zeros from the endless channel, through the fixed buffer
  assert.equal(r.bytesRead, 8 + 15 + 256 * 65536);
});

Deno.test("reader errors: bad header, unknown frame, end before EOF, misuse", async () => {
  const hdr = encodeStreamHeader();
  const bad = hdr.slice();
  bad[3] = 0x58;
  await assert.rejects(
    new FrameReader(new MemChannel(bad, 100)).readStreamHeader(),
    (e: unknown) => e instanceof WireError && /not a Ferry migration stream/.test(e.message),
  );
  const unknown = concat([hdr, new Uint8Array([0x2a, 0, 0, 0, 0])]);
  const r1 = new FrameReader(new MemChannel(unknown, 100));
  await r1.readStreamHeader();
  await assert.rejects(r1.next(), new WireError("unknown frame type 0x2a"));
  const noEof = concat([hdr, encodeSectionStart(1, 0, RAM)]);
  await assert.rejects(
    readAll(new FrameReader(new MemChannel(noEof, 100))),
    new WireError("migration stream truncated: end of stream before the EOF frame", "truncated"),
  );
  // A 100-byte body behind the record's 15-byte head ("device"): a 115-byte payload.
  const dev = concat([hdr, encodeSectionFull(DEV, new Uint8Array(100)), encodeEof()]);
  const r2 = new FrameReader(new MemChannel(dev, 100));
  await assert.rejects(r2.next(), (e: unknown) => e instanceof Error && !(e instanceof WireError));
  await r2.readStreamHeader();
  await assert.rejects(r2.readStreamHeader(), /already read/);
  assert.equal((await r2.next()).length, 115);
  await assert.rejects(r2.next(), /115 payload bytes of the SECTION_FULL frame not consumed/);
  await assert.rejects(r2.readInto(new Uint8Array(116)), /cannot consume 116 bytes/);
  await r2.skip(40);
  assert.equal((await r2.readPayload()).length, 75);
  assert.equal((await r2.next()).type, FrameType.EOF);
  assert.equal(r2.bytesRead, dev.length);
  assert.throws(() => new FrameReader(new MemChannel(dev, 1), 1000), RangeError);
});

Deno.test("a page run that follows a page run lands in its target straight from the channel", async () => {
  const mib = 1 << 20;
  const runA = new Uint8Array(mib).fill(0xa1);
  const runB = new Uint8Array(mib).fill(0xb2);
  const zeros = Array.from({ length: 100 }, (_, i) => encodeZeroRun(0, 512 + i, 1));
  const bytes = concat([
    encodeStreamHeader(),
    encodePageRun(0, 0, 4096, runA),
    encodePageRun(0, 256, 4096, runB),
    ...zeros,
    encodeEof(),
  ]);
  // Serves whatever each read asks for and records where it went (a target, or the reader's
  // buffer) and how much.
  const reads: { into: "target" | "buffer"; n: number }[] = [];
  const targets = new Set<ArrayBufferLike>();
  const ch = new MemChannel(bytes, Infinity);
  const record: Channel = {
    read: async (p) => {
      const n = await ch.read(p);
      if (n !== null) reads.push({ into: targets.has(p.buffer) ? "target" : "buffer", n });
      return n;
    },
    write: (p) => ch.write(p),
    closeWrite: () => ch.closeWrite(),
    close: () => ch.close(),
  };
  const r = new FrameReader(record);
  await r.readStreamHeader();
  const landed: Uint8Array[] = [];
  const buffered: number[] = [];
  for (const _ of [runA, runB]) {
    assert.equal((await r.next()).type, FrameType.PAGE_RUN);
    await r.readBytes(RUN_HEADER_SIZE);
    const target = new Uint8Array(mib);
    targets.add(target.buffer);
    const before = reads.length;
    await r.readInto(target);
    landed.push(target);
    // What of this run's pages came through the reader's buffer (read before readInto).
    buffered.push(mib - reads.slice(before).reduce((s, x) => s + x.n, 0));
  }
  assert.deepEqual(landed, [runA, runB]);
  // The first run follows small frames: up to the full read-ahead of it may come buffered.
  assert.ok(buffered[0] > 0 && buffered[0] <= 64 << 10, `first run buffered ${buffered[0]}`);
  // The second follows a direct read: only what shares a small header read with it.
  assert.ok(buffered[1] <= 64, `second run: ${buffered[1]} bytes went through the buffer`);
  // Small frames after it are read ahead in full again: 100 zero runs in two reads at most.
  const before = reads.length;
  for (let i = 0; i < zeros.length; i++) {
    assert.equal((await r.next()).type, FrameType.ZERO_RUN);
    await r.readPayload();
  }
  assert.ok(reads.length - before <= 2, `${reads.length - before} reads for 100 zero runs`);
  assert.equal((await r.next()).type, FrameType.EOF);
});
