/**
 * The raw baseline's two halves, one per process: `sink` listens, accepts one connection
 * and reads it to the end into one reused buffer; `source` connects and writes `--bytes`
 * bytes from one buffer in `--chunk`-sized writes, then half-closes. Each prints one JSON
 * line on stdout with wall-clock timestamps (performance.timeOrigin + now(), so the
 * orchestrator can compare the two processes' clocks).
 *
 * Usage:
 *   deno run -A bench/raw_socket.ts sink tcp:127.0.0.1:0 [--chunk N]
 *   deno run -A bench/raw_socket.ts source tcp:127.0.0.1:PORT --bytes N [--chunk N]
 * (unix:PATH instead of tcp:HOST:PORT for a unix socket).
 *
 * @module
 */
import { cpuUsage } from "node:process";
import { parseArgs } from "node:util";

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
}

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

async function sink(uri: string, chunk: number): Promise<SinkResult> {
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
  const buf = new Uint8Array(chunk);
  buf.fill(1); // touched before the clock starts, as the migration's pre-touched RAM
  let bytes = 0;
  let reads = 0;
  let firstByteAt = 0;
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) break;
    if (reads === 0) firstByteAt = wallNow();
    bytes += n;
    reads++;
  }
  const eofAt = wallNow();
  const cpuMs = cpuMsSince(cpu0);
  conn.close();
  return { bytes, reads, firstByteAt, eofAt, cpuMs };
}

async function source(uri: string, total: number, chunk: number): Promise<SourceResult> {
  const buf = new Uint8Array(chunk);
  crypto.getRandomValues(buf.subarray(0, Math.min(chunk, 65536)));
  for (let off = 65536; off < chunk; off += 65536) buf.copyWithin(off, 0, 65536);
  const cpu0 = cpuUsage();
  const connectAt = wallNow();
  const conn = await connectTo(uri);
  if (conn.localAddr.transport === "tcp") (conn as Deno.TcpConn).setNoDelay(true);
  const firstWriteAt = wallNow();
  let sent = 0;
  let writes = 0;
  while (sent < total) {
    const piece = Math.min(chunk, total - sent);
    let off = 0;
    while (off < piece) {
      off += await conn.write(off === 0 && piece === chunk ? buf : buf.subarray(off, piece));
      writes++;
    }
    sent += piece;
  }
  await conn.closeWrite();
  const doneAt = wallNow();
  const cpuMs = cpuMsSince(cpu0);
  conn.close();
  return { bytes: sent, writes, connectAt, firstWriteAt, doneAt, cpuMs };
}

if (import.meta.main) {
  const { values, positionals } = parseArgs({
    args: Deno.args,
    options: { bytes: { type: "string" }, chunk: { type: "string", default: String(1 << 20) } },
    allowPositionals: true,
  });
  const [mode, uri] = positionals;
  const chunk = Number(values.chunk);
  if (!uri || !(chunk > 0)) throw new Error("usage: raw_socket.ts sink|source URI [--bytes N]");
  if (mode === "sink") console.log(JSON.stringify(await sink(uri, chunk)));
  else if (mode === "source") {
    const bytes = Number(values.bytes);
    if (!(bytes > 0)) throw new Error("source needs --bytes N");
    console.log(JSON.stringify(await source(uri, bytes, chunk)));
  } else throw new Error(`unknown mode '${mode}'`);
}
