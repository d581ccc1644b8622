/**
 * Scenario U: micro-measurements of the data path's parts in this one process, moved here from
 * the test suite (tests assert what happened; how fast it happened is the bench's business).
 * All informational, medians over the repetitions:
 * - channels: 1 GiB of 1 MiB writes over loopback TCP and a unix socket (ChannelWriter, sender
 *   and receiver in this process); 512 MiB over plain TCP, mutual TLS over TCP and over a unix
 *   socket (a throw-away PKI made with openssl);
 * - FrameReader: a 64 MiB stream of 1 MiB page runs read into guest memory from an in-memory
 *   channel serving reads of up to 64 KiB and up to 1 MiB;
 * - XBZRLE: encode and decode of 4096 pages with 64 changed bytes each;
 * - codec pools (2 Workers): compress (level 1) and decompress of text-like and random pages,
 *   1 and 64 pages per stream;
 * - the vCPU: `increment` over 58 MiB, pages per second with the copy-on-first-write snapshot
 *   off and on (and in the first 300 ms after it begins, while it copies every page);
 * - the dirty log: the best of 20 syncs of a clean log of a 1 GiB guest (262144 pages).
 *
 * @module
 */
import { ChannelWriter } from "../adapters/channels/channel_writer.ts";
import { connectChannel } from "../adapters/channels/connect.ts";
import { listenChannel } from "../adapters/channels/listen.ts";
import { syncDirtyLog } from "../adapters/memory/dirty_log.ts";
import { Machine } from "../adapters/memory/machine.ts";
import { CompressPool } from "../domain/codecs/compress_pool.ts";
import { DecompressPool } from "../domain/codecs/decompress_pool.ts";
import { xbzrle } from "../domain/codecs/xbzrle.ts";
import type { Channel } from "../domain/ports.ts";
import {
  decodeRunHeader,
  encodeStreamHeader,
  FrameReader,
  FrameType,
  putFrameHeader,
  putPageRunHeader,
  RUN_HEADER_SIZE,
} from "../domain/wire/mod.ts";
import { makePki } from "../harness/pki.ts";
import { median } from "./measure.ts";
import { type Figure, infoFigure as info } from "./report.ts";

const MIB = 2 ** 20;
const PAGE = 4096;

/** One repetition of scenario U: rates by name (see the module doc for the units). */
export interface MicroRun {
  /** Bytes per second. */
  channels: Record<string, number>;
  /** Bytes per second, by largest read. */
  frameReader: Record<string, number>;
  /** Bytes of pages per second. */
  xbzrle: { encode: number; decode: number };
  /** Pages per second. */
  codecPools: Record<string, number>;
  /** Pages per second. */
  vcpu: { off: number; first: number; on: number };
  /** ms: the best of 20 syncs of a clean 1 GiB dirty log. */
  cleanSyncMs: number;
}

/** Bytes that are not all alike (xorshift32), as the channel tests use. */
function noise(size: number, seed: number): Uint8Array {
  const words = new Uint32Array(Math.ceil(size / 4));
  let x = seed >>> 0 || 0x9e3779b9;
  for (let i = 0; i < words.length; i++) {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    words[i] = x;
  }
  return new Uint8Array(words.buffer, 0, size);
}

/** Moves `total` bytes `from` → `to` in 1 MiB writes (through a ChannelWriter); bytes/s. */
async function pump(from: Channel, to: Channel, total: number): Promise<number> {
  const piece = noise(MIB, 3);
  const t0 = performance.now();
  const received = (async () => {
    const buf = new Uint8Array(MIB);
    let got = 0;
    for (let n; (n = await to.read(buf)) !== null;) got += n;
    return got;
  })();
  const writer = new ChannelWriter(from);
  for (let off = 0; off < total; off += MIB) await writer.write(piece);
  await from.closeWrite();
  if (await received !== total) throw new Error("channel bench: bytes lost");
  return total / ((performance.now() - t0) / 1000);
}

/** A listener for `uri` (with `listenOpts`), one connection to it, `total` bytes across. */
async function channelRate(
  uri: string,
  total: number,
  listenOpts: Parameters<typeof listenChannel>[1] = {},
  connectOpts: Parameters<typeof connectChannel>[1] = {},
): Promise<number> {
  const listener = await listenChannel(uri, listenOpts);
  try {
    const [server, client] = await Promise.all([
      listener.accept(),
      connectChannel(listener.uri, connectOpts),
    ]);
    try {
      return await pump(client, server, total);
    } finally {
      client.close();
      server.close();
    }
  } finally {
    listener.close();
  }
}

async function channels(): Promise<Record<string, number>> {
  const pki = await makePki();
  try {
    const tls = { tls: { creds: pki.server } };
    return {
      "tcp, 1 GiB": await channelRate("tcp:127.0.0.1:0", 1024 * MIB),
      "unix, 1 GiB": await channelRate(`unix:${pki.root}/u.sock`, 1024 * MIB),
      "plain tcp, 512 MiB": await channelRate("tcp:127.0.0.1:0", 512 * MIB),
      "mutual TLS over tcp, 512 MiB": await channelRate("tcp:127.0.0.1:0", 512 * MIB, tls, {
        tls: { creds: pki.client },
      }),
      "mutual TLS over unix, 512 MiB": await channelRate(
        `unix:${pki.root}/t.sock`,
        512 * MIB,
        tls,
        {
          tls: { creds: pki.client, hostname: "localhost" },
        },
      ),
    };
  } finally {
    await Deno.remove(pki.root, { recursive: true });
  }
}

/** Serves `data` in reads of 1..maxChunk bytes (a fixed pseudo-random sequence). */
class MemoryChannel implements Channel {
  #pos = 0;
  #x = 1;
  constructor(readonly data: Uint8Array, readonly maxChunk: number) {}
  read(p: Uint8Array): Promise<number | null> {
    const left = this.data.length - this.#pos;
    if (left <= 0) return Promise.resolve(null);
    this.#x = (this.#x * 1103515245 + 12345) >>> 0;
    const n = Math.min(p.length, left, 1 + (this.#x % this.maxChunk));
    p.set(this.data.subarray(this.#pos, this.#pos + n));
    this.#pos += n;
    return Promise.resolve(n);
  }
  write(): Promise<number> {
    return Promise.reject(new Error("read-only"));
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {}
}

async function frameReader(): Promise<Record<string, number>> {
  const guestBytes = 64 * MIB;
  const src = new Uint8Array(guestBytes);
  for (let i = 0; i < src.length; i += 8) src[i] = i >>> 12;
  const runBytes = 256 * PAGE;
  const runs = guestBytes / runBytes;
  const bytes = new Uint8Array(8 + runs * (15 + runBytes) + 5);
  const v = new DataView(bytes.buffer);
  bytes.set(encodeStreamHeader());
  let off = 8;
  for (let i = 0; i < runs; i++) {
    off = putPageRunHeader(v, off, 0, i * 256, 256, PAGE);
    bytes.set(src.subarray(i * runBytes, (i + 1) * runBytes), off);
    off += runBytes;
  }
  putFrameHeader(v, off, FrameType.EOF, 0);
  const dst = new Uint8Array(guestBytes);
  dst.fill(1); // first-touch page faults are not the reader's cost
  const rates: Record<string, number> = {};
  for (const maxChunk of [64 << 10, MIB]) {
    const passes = 4;
    const t0 = performance.now();
    for (let p = 0; p < passes; p++) {
      const r = new FrameReader(new MemoryChannel(bytes, maxChunk));
      await r.readStreamHeader();
      for (;;) {
        const h = await r.next();
        if (h.type === FrameType.EOF) break;
        const run = decodeRunHeader(await r.readBytes(RUN_HEADER_SIZE));
        const at = run.firstPage * PAGE;
        await r.readInto(dst.subarray(at, at + run.count * PAGE));
      }
    }
    rates[`reads of ≤ ${maxChunk >> 10} KiB`] = passes * guestBytes /
      ((performance.now() - t0) / 1000);
  }
  return rates;
}

/** Runs `f` once to warm up, then `reps` times; bytes per second for `bytes` per run. */
function rate(f: () => void, bytes: number, reps = 20): number {
  f();
  const t = performance.now();
  for (let r = 0; r < reps; r++) f();
  return (reps * bytes) / ((performance.now() - t) / 1000);
}

function xbzrleRates(): { encode: number; decode: number } {
  const n = 4096;
  const old = new Uint8Array(n * PAGE);
  for (let i = 0; i < old.length; i += 65536) crypto.getRandomValues(old.subarray(i, i + 65536));
  const cur = old.slice();
  for (let p = 0; p < n; p++) {
    const at = p * PAGE + Math.floor(Math.random() * (PAGE - 64));
    for (let k = 0; k < 64; k++) cur[at + k] ^= 1 + (k % 255);
  }
  const deltas = new Uint8Array(n * PAGE);
  const lens = new Int32Array(n);
  const encode = rate(() => {
    for (let p = 0, o = 0; p < n; p++, o += PAGE) {
      lens[p] = xbzrle.encode(
        old.subarray(o, o + PAGE),
        cur.subarray(o, o + PAGE),
        deltas.subarray(o, o + PAGE),
      );
    }
  }, n * PAGE);
  const decode = rate(() => {
    for (let p = 0, o = 0; p < n; p++, o += PAGE) {
      xbzrle.decode(deltas.subarray(o, o + lens[p]), old.subarray(o, o + PAGE));
    }
  }, n * PAGE);
  return { encode, decode };
}

/** `n` pages of text-like bytes (compressible), or random ones. */
function pages(n: number, random: boolean): Uint8Array {
  const b = new Uint8Array(n * PAGE);
  if (random) {
    for (let i = 0; i < b.length; i += 65536) crypto.getRandomValues(b.subarray(i, i + 65536));
    return b;
  }
  const words = ["ferry", "page", "dirty", "guest", "ram", "sync", "block", "vcpu", "zero"];
  let x = 1;
  for (let i = 0; i < b.length;) {
    x = (x * 1103515245 + 12345) >>> 0;
    for (const ch of words[x % words.length] + " ") if (i < b.length) b[i++] = ch.charCodeAt(0);
  }
  return b;
}

async function codecPools(): Promise<Record<string, number>> {
  const rates: Record<string, number> = {};
  const timed = async (name: string, run: () => Promise<number>) => {
    await run(); // warm up (Workers start, code gets hot)
    const t = performance.now();
    const n = await run();
    rates[name] = n / ((performance.now() - t) / 1000);
  };
  for (const [label, unit] of [["1 page per stream", 1], ["64 pages per stream", 64]] as const) {
    const cp = new CompressPool(2, 1, { pagesPerBlob: unit });
    const dp = new DecompressPool(2, { pagesPerBlob: unit });
    try {
      for (
        const [kind, data] of [["text", pages(64, false)], ["random", pages(64, true)]] as const
      ) {
        let streams: Uint8Array[] = [];
        await timed(`compress level 1, ${kind}, ${label}`, async () => {
          const inflight: Promise<Uint8Array[]>[] = [];
          for (let b = 0; b < 64; b++) inflight.push(cp.compress(data, 64));
          streams = (await Promise.all(inflight))[0];
          return 64 * 64;
        });
        await timed(`decompress, ${kind}, ${label}`, async () => {
          const inflight: Promise<Uint8Array>[] = [];
          for (let b = 0; b < 64; b++) inflight.push(dp.decompress(streams, 64));
          await Promise.all(inflight);
          return 64 * 64;
        });
      }
    } finally {
      cp.close();
      dp.close();
    }
  }
  return rates;
}

async function vcpuRates(): Promise<{ off: number; first: number; on: number }> {
  const m = await Machine.create({
    blocks: [{ name: "pc.ram", size: 48 * MIB }, { name: "extra", size: 16 * MIB }],
    fill: "random",
    workload: { kind: "increment", start: 2 * MIB, end: 60 * MIB },
    startPaused: true,
    incoming: false,
    arrivalDigest: true, // the copy-on-first-write snapshot's buffers, measured below
  });
  const written = () => m.vcpu.registers()["pages-written"];
  const measure = async () => {
    m.cont();
    while (m.vcpu.isParked()) await new Promise((r) => setTimeout(r, 1));
    const [w0, t0] = [written(), performance.now()];
    await new Promise((r) => setTimeout(r, 300));
    const r = (written() - w0) / ((performance.now() - t0) / 1000);
    await m.stop();
    return r;
  };
  try {
    await measure(); // boot pass and warm-up
    const off = await measure();
    m.vcpu.beginSnapshot();
    const first = await measure(); // the first pass copies every page of the range
    const on = await measure();
    m.vcpu.endSnapshot();
    return { off, first, on };
  } finally {
    await m.dispose();
  }
}

function cleanSync(): number {
  const dirty = new Uint8Array(new SharedArrayBuffer(262144));
  const into = new Uint8Array(262144);
  for (let i = 0; i < 50; i++) syncDirtyLog(dirty, into); // warm up the JIT
  let best = Infinity;
  for (let i = 0; i < 20; i++) {
    const t = performance.now();
    syncDirtyLog(dirty, into);
    best = Math.min(best, performance.now() - t);
  }
  return best;
}

/** One repetition of scenario U (see the module doc). */
export async function microScenario(): Promise<MicroRun> {
  return {
    channels: await channels(),
    frameReader: await frameReader(),
    xbzrle: xbzrleRates(),
    codecPools: await codecPools(),
    vcpu: await vcpuRates(),
    cleanSyncMs: cleanSync(),
  };
}

/** Scenario U's figures: informational medians. */
export function figuresMicro(runs: readonly MicroRun[]): Figure[] {
  if (runs.length === 0) return [];
  const med = (f: (r: MicroRun) => number) => median(runs.map(f));
  const gb = (f: (r: MicroRun) => number) => med(f) / 1e9;
  const figures: Figure[] = [];
  for (const name of Object.keys(runs[0].channels)) {
    figures.push(info(`U.ch.${name}`, `U: channel, ${name}`, gb((r) => r.channels[name]), "GB/s"));
  }
  for (const name of Object.keys(runs[0].frameReader)) {
    figures.push(
      info(`U.fr.${name}`, `U: FrameReader, ${name}`, gb((r) => r.frameReader[name]), "GB/s"),
    );
  }
  figures.push(
    info("U.xbzrle.encode", "U: XBZRLE encode, 64 B changed", gb((r) => r.xbzrle.encode), "GB/s"),
    info("U.xbzrle.decode", "U: XBZRLE decode, 64 B changed", gb((r) => r.xbzrle.decode), "GB/s"),
  );
  for (const name of Object.keys(runs[0].codecPools)) {
    figures.push(
      info(
        `U.pool.${name}`,
        `U: codec pool (2), ${name}`,
        med((r) => r.codecPools[name]),
        "pages/s",
      ),
    );
  }
  const mps = (f: (r: MicroRun) => number) => med(f) / 1e6;
  figures.push(
    info("U.vcpu.off", "U: vCPU increment, snapshot off", mps((r) => r.vcpu.off), "M pages/s"),
    info("U.vcpu.on", "U: vCPU increment, snapshot on", mps((r) => r.vcpu.on), "M pages/s"),
    info(
      "U.vcpu.first",
      "U: vCPU increment, first 300 ms of a snapshot (copying)",
      mps((r) => r.vcpu.first),
      "M pages/s",
    ),
    info(
      "U.sync",
      "U: clean 1 GiB dirty log, best of 20 syncs",
      med((r) => r.cleanSyncMs) * 1000,
      "µs",
    ),
  );
  return figures;
}
