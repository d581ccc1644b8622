/**
 * The raw socket baseline: two Deno processes (bench/raw_socket.ts as sink and source)
 * move the same bytes as a migration over loopback TCP or a unix socket, with the same
 * chunk size, and the bench reads their timestamps.
 *
 * @module
 */
import type { PairResult, RawPages, SinkReady, SinkResult, SourceResult } from "./raw_socket.ts";

const SCRIPT = new URL("./raw_socket.ts", import.meta.url).pathname;

/** One raw transfer, measured. */
export interface RawResult {
  transport: "tcp" | "unix";
  bytes: number;
  chunk: number;
  /** Buffer the chunks come from / go to in turn (chunk = one cache-hot buffer). */
  span: number;
  /** Pages asked for both buffers, and the bytes huge pages backed (sink + source). */
  pages: RawPages;
  hugeBytes: number | null;
  /** Source's first write to the sink's end of stream (both processes' wall clocks). */
  ms: number;
  /** bytes / ms, in bytes per second. */
  bytesPerSec: number;
  /** The sink's own first-byte-to-EOF time, and its read count (mean read size = bytes/reads). */
  sinkMs: number;
  sinkReads: number;
  /** The source's own first-write-to-half-close time. */
  sourceMs: number;
  /** CPU ms (user + system) of the sink and of the source process during the transfer. */
  sinkCpuMs: number;
  sourceCpuMs: number;
  /** With {@link runRawMedian}: every run's bytes per second, in the order run. */
  samples?: number[];
}

function spawn(args: string[]): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", SCRIPT, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/** Reads stdout lines of `child`, parsing each as JSON, until it exits. */
async function* jsonLines(child: Deno.ChildProcess): AsyncGenerator<unknown> {
  let pending = "";
  for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
    pending += chunk;
    const parts = pending.split("\n");
    pending = parts.pop() ?? "";
    for (const line of parts) if (line.trim()) yield JSON.parse(line);
  }
  if (pending.trim()) yield JSON.parse(pending);
}

function kill(child: Deno.ChildProcess): void {
  try {
    child.kill("SIGKILL");
  } catch { /* already exited */ }
}

/**
 * Moves `bytes` bytes in `chunk`-sized writes from one fresh process to another over
 * `transport` (a unix socket lives in a temp dir removed afterwards), each side cycling
 * through a buffer of `span` bytes on `pages`, touched before the clock starts. With
 * `files`, a file copy: the source reads each chunk from `files.from`, the sink writes it to
 * `files.to` and flushes that before its end of stream counts.
 */
export async function runRaw(
  transport: "tcp" | "unix",
  bytes: number,
  chunk: number,
  span = chunk,
  pages: RawPages = "4k",
  files?: { from: string; to: string },
): Promise<RawResult> {
  const dir = transport === "unix" ? await Deno.makeTempDir({ prefix: "ferry-bench-" }) : null;
  const uri = dir ? `unix:${dir}/raw.sock` : "tcp:127.0.0.1:0";
  const sizes = ["--chunk", String(chunk), "--span", String(span), "--pages", pages];
  const sink = spawn([
    "sink",
    uri,
    ...sizes,
    ...(files ? ["--file", files.to, "--size", String(bytes)] : []),
  ]);
  let source: Deno.ChildProcess | null = null;
  try {
    const sinkOut = jsonLines(sink);
    const ready = (await sinkOut.next()).value as SinkReady | undefined;
    if (!ready?.listening) throw new Error("raw sink did not start");
    source = spawn([
      "source",
      ready.listening,
      "--bytes",
      String(bytes),
      ...sizes,
      ...(files ? ["--file", files.from] : []),
    ]);
    const [sinkDone, sourceDone] = await Promise.all([
      sinkOut.next(),
      jsonLines(source).next(),
    ]);
    const s = sinkDone.value as SinkResult;
    const w = sourceDone.value as SourceResult;
    const [a, b] = await Promise.all([sink.status, source.status]);
    if (!a.success || !b.success || !s || !w) throw new Error("raw socket processes failed");
    if (s.bytes !== bytes) throw new Error(`raw sink got ${s.bytes} of ${bytes} bytes`);
    const ms = s.eofAt - w.firstWriteAt;
    return {
      transport,
      bytes,
      chunk,
      span,
      pages,
      hugeBytes: s.hugeBytes === null || w.hugeBytes === null ? null : s.hugeBytes + w.hugeBytes,
      ms,
      bytesPerSec: bytes / (ms / 1000),
      sinkMs: s.eofAt - s.firstByteAt,
      sinkReads: s.reads,
      sourceMs: w.doneAt - w.firstWriteAt,
      sinkCpuMs: s.cpuMs,
      sourceCpuMs: w.cpuMs,
    };
  } finally {
    kill(sink);
    if (source) kill(source);
    await sink.status;
    await source?.status;
    if (dir) await Deno.remove(dir, { recursive: true });
  }
}

/**
 * Runs {@link runRaw} `n` times back to back and returns the run of median throughput, with
 * every run's figure in `samples`. One raw run here can land anywhere from 3.5 to 9.5 GB/s
 * (unix) from one minute to the next; a baseline taken as the median of three does not let
 * one lucky or unlucky run decide a ratio.
 */
export async function runRawMedian(
  transport: "tcp" | "unix",
  bytes: number,
  chunk: number,
  n = 3,
): Promise<RawResult> {
  const runs: RawResult[] = [];
  for (let i = 0; i < n; i++) runs.push(await runRaw(transport, bytes, chunk));
  const sorted = [...runs].sort((a, b) => a.bytesPerSec - b.bytesPerSec);
  return { ...sorted[Math.floor((n - 1) / 2)], samples: runs.map((r) => r.bytesPerSec) };
}

/** A one-process pair, measured: both halves on one thread. */
export interface OneProcessResult {
  pages: RawPages;
  bytesPerSec: number;
  ms: number;
  cpuMs: number;
  hugeBytes: number | null;
}

/**
 * Moves `bytes` over loopback TCP between two touched buffers of that size in ONE fresh
 * process, its reads and writes taking turns on one thread: the pair that
 * ../shared/acceptance/lib/raw_pair.ts measures. A reference only: two agents are two
 * processes, so a migration is judged against the two-process pair ({@link runRaw}).
 */
export async function runRawOneProcess(
  bytes: number,
  chunk: number,
  pages: RawPages,
): Promise<OneProcessResult> {
  const args = ["pair", "tcp:127.0.0.1:0", "--bytes", String(bytes), "--chunk", String(chunk)];
  const child = spawn([...args, "--span", String(bytes), "--pages", pages]);
  try {
    const r = (await jsonLines(child).next()).value as PairResult | undefined;
    const status = await child.status;
    if (!status.success || !r) throw new Error("raw one-process pair failed");
    if (r.bytes !== bytes) throw new Error(`raw one-process pair moved ${r.bytes} of ${bytes}`);
    return {
      pages,
      bytesPerSec: bytes / (r.ms / 1000),
      ms: r.ms,
      cpuMs: r.cpuMs,
      hugeBytes: r.hugeBytes,
    };
  } finally {
    kill(child);
    await child.status;
  }
}
