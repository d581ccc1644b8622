/**
 * The raw baseline's two halves, one per process: `sink` listens, accepts one connection
 * and reads it to the end into one reused buffer; `source` connects and writes `--bytes`
 * bytes from one buffer in `--chunk`-sized writes (with an agent's sender's socket settings:
 * over loopback TCP a 1 MiB send buffer, over a unix socket 4 MiB;
 * adapters/channels/send_buffer.ts), then half-closes.
 * Each prints one JSON line on stdout with wall-clock timestamps (performance.timeOrigin +
 * now(), so the orchestrator can compare the two processes' clocks).
 *
 * Usage:
 *   deno run -A bench/raw_socket.ts sink tcp:127.0.0.1:0 [--chunk N] [--span N]
 *   deno run -A bench/raw_socket.ts source tcp:127.0.0.1:PORT --bytes N [--chunk N] [--span N]
 * (unix:PATH instead of tcp:HOST:PORT for a unix socket). `--span` (default: the chunk) is
 * the buffer the chunks are taken from / read into in turn: the default is one cache-hot
 * buffer; a span as big as the transfer streams through memory as a migration does.
 * `--pages huge` advises the buffer MADV_HUGEPAGE before it is touched (`4k`, the default,
 * MADV_NOHUGEPAGE), as an agent does with guest RAM (adapters/memory/huge_pages.ts).
 * `pair` runs both halves in one process, on one thread (`deno run -A bench/raw_socket.ts pair
 * tcp:127.0.0.1:0 --bytes N --span N`): the pair ../shared/acceptance/lib/raw_pair.ts measures,
 * kept as a reference beside the two-process pair that agents are judged against.
 * `--file PATH` makes it a file copy (the disk's baseline): the source reads each chunk from
 * the file before writing it (from its start, in order), the sink writes each chunk it filled
 * to the file (created or truncated) and flushes it (fdatasync) before it reports the end;
 * with `--size N` the sink makes the file N bytes long (sparse) before it listens, as a
 * destination agent sizes its image at start (adapters/disk/drive.ts prepareDrive), so the
 * baseline writes into a sized image as the destination does.
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";
import { capLoopbackSendBuffer, raiseUnixSendBuffer } from "../adapters/channels/send_buffer.ts";
import { adviseHugePages, hugePageBytes } from "../adapters/memory/huge_pages.ts";

/** What `sink` prints once listening. */
export interface SinkReady {
  listening: string;
}

/** What `sink` prints at the end of the stream. */
export interface SinkResult {
  bytes: number;
  reads: number;
  /** Wall-clock ms of the first byte read and of end of stream. */
  firstByteAt: number;
  eofAt: number;
  /** CPU ms of this process (user + system) from accept to end of stream. */
  cpuMs: number;
  /** Bytes of its buffer backed by huge pages once touched (null: unknown). */
  hugeBytes: number | null;
}

/** What `source` prints after its last write and half-close. */
export interface SourceResult {
  bytes: number;
  writes: number;
  /** Wall-clock ms before connecting, before the first write and after the half-close. */
  connectAt: number;
  firstWriteAt: number;
  doneAt: number;
  /** CPU ms of this process (user + system) from connect to half-close. */
  cpuMs: number;
  /** Bytes of its buffer backed by huge pages once touched (null: unknown). */
  hugeBytes: number | null;
}

/** Which pages back a raw pair's buffers. */
export type RawPages = "4k" | "huge";

function cpuMsSince(start: NodeJS.CpuUsage): number {
  const d = cpuUsage(start);
  return (d.user + d.system) / 1000;
}

function wallNow(): number {
  return performance.timeOrigin + performance.now();
}

function parseUri(uri: string): { path: string } | { hostname: string; port: number } {
  if (uri.startsWith("unix:")) return { path: uri.slice(5) };
  const m = /^tcp:(.+):(\d+)$/.exec(uri);
  if (!m) throw new Error(`expected tcp:HOST:PORT or unix:PATH, got '${uri}'`);
  return { hostname: m[1], port: Number(m[2]) };
}

function listenOn(uri: string): Deno.Listener {
  const a = parseUri(uri);
  return "path" in a ? Deno.listen({ transport: "unix", path: a.path }) : Deno.listen(a);
}

function connectTo(uri: string): Promise<Deno.Conn> {
  const a = parseUri(uri);
  return "path" in a ? Deno.connect({ transport: "unix", path: a.path }) : Deno.connect(a);
}

/**
 * A buffer of `span` bytes (≥ `chunk`) touched now, so first-touch faults stay out of the
 * timing, and a cursor over it that hands out `chunk`-byte views in turn: span = chunk is one
 * cache-hot buffer; span = the transfer size streams through memory like guest RAM does.
 */
function spanBuffer(
  span: number,
  chunk: number,
  random: boolean,
  pages: RawPages,
): { next: () => Uint8Array; hugeBytes: number | null } {
  const size = Math.max(span, chunk);
  const buf = new ArrayBuffer(size);
  adviseHugePages(buf, pages === "huge");
  const big = new Uint8Array(buf);
  const seedLen = Math.min(size, 65536);
  if (random) crypto.getRandomValues(big.subarray(0, seedLen));
  else big.fill(1, 0, seedLen);
  for (let off = seedLen; off < size; off += seedLen) big.copyWithin(off, 0, seedLen);
  let pos = 0;
  const next = () => {
    if (pos + chunk > size) pos = 0;
    const view = big.subarray(pos, pos + chunk);
    pos += chunk;
    return view;
  };
  return { next, hugeBytes: hugePageBytes([buf]) };
}

async function sink(
  uri: string,
  chunk: number,
  span: number,
  pages: RawPages,
  path?: string,
  size?: number,
): Promise<SinkResult> {
  const { next, hugeBytes } = spanBuffer(span, chunk, false, pages);
  const file = path === undefined
    ? null
    : Deno.openSync(path, { write: true, create: true, truncate: true });
  if (file && size !== undefined) file.truncateSync(size);
  const listener = listenOn(uri);
  const a = listener.addr;
  const bound = a.transport === "unix"
    ? `unix:${(a as Deno.UnixAddr).path}`
    : `tcp:${(a as Deno.NetAddr).hostname}:${(a as Deno.NetAddr).port}`;
  console.log(JSON.stringify({ listening: bound } satisfies SinkReady));
  const conn = await listener.accept();
  const cpu0 = cpuUsage();
  listener.close();
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
  let bytes = 0;
  let reads = 0;
  let firstByteAt = 0;
  let buf = next();
  let filled = 0;
  for (;;) {
    const n = await conn.read(filled === 0 ? buf : buf.subarray(filled));
    if (n === null) break;
    if (reads === 0) firstByteAt = wallNow();
    bytes += n;
    reads++;
    filled += n;
    if (filled === buf.length) {
      if (file) writeAll(file, buf);
      buf = next();
      filled = 0;
    }
  }
  if (file) {
    writeAll(file, buf.subarray(0, filled));
    file.syncDataSync();
    file.close();
  }
  const eofAt = wallNow();
  const cpuMs = cpuMsSince(cpu0);
  conn.close();
  return { bytes, reads, firstByteAt, eofAt, cpuMs, hugeBytes };
}

function writeAll(file: Deno.FsFile, data: Uint8Array): void {
  for (let off = 0; off < data.length;) off += file.writeSync(data.subarray(off));
}

function readFull(file: Deno.FsFile, buf: Uint8Array): void {
  for (let off = 0; off < buf.length;) {
    const n = file.readSync(buf.subarray(off));
    if (n === null) throw new Error("raw source: the file is shorter than --bytes");
    off += n;
  }
}

async function source(
  uri: string,
  total: number,
  chunk: number,
  span: number,
  pages: RawPages,
  path?: string,
): Promise<SourceResult> {
  const { next, hugeBytes } = spanBuffer(span, chunk, true, pages);
  const file = path === undefined ? null : Deno.openSync(path, { read: true });
  const cpu0 = cpuUsage();
  const connectAt = wallNow();
  const conn = await connectTo(uri);
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
  // The socket settings an agent's sender has: over loopback TCP a 1 MiB send buffer, over a
  // unix socket 4 MiB (adapters/channels/send_buffer.ts).
  capLoopbackSendBuffer(conn);
  const a = parseUri(uri);
  if ("path" in a) raiseUnixSendBuffer(a.path);
  const firstWriteAt = wallNow();
  let sent = 0;
  let writes = 0;
  while (sent < total) {
    const piece = Math.min(chunk, total - sent);
    const buf = next();
    if (file) readFull(file, buf.subarray(0, piece));
    let off = 0;
    while (off < piece) {
      off += await conn.write(off === 0 && piece === chunk ? buf : buf.subarray(off, piece));
      writes++;
    }
    sent += piece;
  }
  await conn.closeWrite();
  file?.close();
  const doneAt = wallNow();
  const cpuMs = cpuMsSince(cpu0);
  conn.close();
  return { bytes: sent, writes, connectAt, firstWriteAt, doneAt, cpuMs, hugeBytes };
}

/** What `pair` prints: both halves in one process. */
export interface PairResult {
  bytes: number;
  /** The first write to the end of stream, ms. */
  ms: number;
  /** CPU ms of the process (user + system) over the same span. */
  cpuMs: number;
  /** Bytes of its two buffers backed by huge pages once touched (null: unknown). */
  hugeBytes: number | null;
}

/**
 * Both halves in one process: the sink's reads and the source's writes interleave on this one
 * thread, so each chunk is read back while it is still in this core's cache.
 */
async function pair(uri: string, total: number, chunk: number, span: number, pages: RawPages) {
  const from = spanBuffer(span, chunk, true, pages);
  const into = spanBuffer(span, chunk, false, pages);
  const listener = listenOn(uri);
  const a = listener.addr as Deno.NetAddr | Deno.UnixAddr;
  const bound = "path" in a ? `unix:${a.path}` : `tcp:${a.hostname}:${a.port}`;
  const accepted = listener.accept();
  const conn = await connectTo(bound);
  const peer = await accepted;
  listener.close();
  for (const c of [conn, peer]) {
    if (c.localAddr.transport === "tcp") (c as Deno.TcpConn).setNoDelay(true);
  }
  const cpu0 = cpuUsage();
  const t0 = performance.now();
  const reading = (async () => {
    let got = 0;
    let buf = into.next();
    let filled = 0;
    for (;;) {
      const n = await peer.read(filled === 0 ? buf : buf.subarray(filled));
      if (n === null) return got;
      got += n;
      filled += n;
      if (filled === buf.length) (buf = into.next()), (filled = 0);
    }
  })();
  for (let sent = 0; sent < total;) {
    const piece = Math.min(chunk, total - sent);
    const buf = from.next();
    for (let off = 0; off < piece;) off += await conn.write(buf.subarray(off, piece));
    sent += piece;
  }
  await conn.closeWrite();
  const bytes = await reading;
  const ms = performance.now() - t0;
  const cpuMs = cpuMsSince(cpu0);
  conn.close();
  peer.close();
  const hugeBytes = from.hugeBytes === null || into.hugeBytes === null
    ? null
    : from.hugeBytes + into.hugeBytes;
  return { bytes, ms, cpuMs, hugeBytes } satisfies PairResult;
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: {
      bytes: { type: "string" },
      chunk: { type: "string", default: String(1 << 20) },
      span: { type: "string" },
      pages: { type: "string", default: "4k" },
      file: { type: "string" },
      size: { type: "string" },
    },
    allowPositionals: true,
  });
  const [mode, uri] = positionals;
  const chunk = Number(values.chunk);
  const span = values.span === undefined ? chunk : Number(values.span);
  const pages = values.pages as RawPages;
  if (!uri || !(chunk > 0) || !["4k", "huge"].includes(pages)) {
    throw new Error("usage: raw_socket.ts sink|source|pair URI [--bytes N] [--pages 4k|huge]");
  }
  const file = values.file;
  const size = values.size === undefined ? undefined : Number(values.size);
  if (size !== undefined && !(size >= 0)) throw new Error("--size expects a byte count");
  if (mode === "sink") {
    console.log(JSON.stringify(await sink(uri, chunk, span, pages, file, size)));
  } else if (mode === "source") {
    const bytes = Number(values.bytes);
    if (!(bytes > 0)) throw new Error("source needs --bytes N");
    console.log(JSON.stringify(await source(uri, bytes, chunk, span, pages, file)));
  } else if (mode === "pair") {
    const bytes = Number(values.bytes);
    if (!(bytes > 0)) throw new Error("pair needs --bytes N");
    console.log(JSON.stringify(await pair(uri, bytes, chunk, span, pages)));
  } else throw new Error(`unknown mode '${mode}'`);
}
