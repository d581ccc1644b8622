/**
 * Issue 23's scenario D: the guest's disk. A 256 MiB image of random bytes (written once per
 * repetition, so it is in the page cache as a running guest's would be) moved with
 * `blk: true` over loopback TCP, judged against a raw file→socket→file copy of the same image
 * by two fresh Deno processes just before it (bench/raw_socket.ts `--file`: 1 MiB reads, the
 * sink writes each chunk to a new file and fdatasyncs it at the end, as the destination
 * flushes its image before it says `completed`). The migration's guest is a 16 MiB all-zero
 * idle one, so what moves is the disk; with the return path the source's `completed` waits for
 * the destination's, which comes after its image is flushed. Throughput:
 * `disk.transferred / (total-time − setup-time)`. The images are compared afterwards.
 *
 * Then the total time of a 256 MiB random guest with the same disk (`blk`) against the same
 * guest without it, each with fresh agents: what the disk adds to a migration.
 *
 * @module
 */
import { type BenchAgent, type Json, startAgent, withAgents } from "./agent.ts";
import { completedInfo, MIB, patch } from "./kit.ts";
import { median, type QuietWait, sampleCpu, waitForQuiet, wallNow } from "./measure.ts";
import { type RawResult, runRaw } from "./raw.ts";
import { type Figure, infoFigure } from "./report.ts";
import { ferryClient } from "../sdk/client.ts";

/** The image's size. */
export const DISK_BYTES = 256 * MIB;
const CHUNK = MIB;

/** One repetition of scenario D. */
export interface DiskRun {
  quiet: QuietWait;
  /** The raw file→socket→file copy of the image. */
  raw: RawResult;
  /** The disk migration's source info once completed. */
  info: Json;
  /** disk.transferred / (total-time − setup-time), bytes per second. */
  bytesPerSec: number;
  /** POST sent → the source saw completed (the destination's image flushed), ms. */
  wallMs: number;
  /** CPU ms of the two agents over the disk migration (POST → completed). */
  cpuMs: number;
  /** total-time of the 256 MiB random guest with the disk (blk), and without. */
  withDiskMs: number;
  ramAloneMs: number;
}

async function postMigration(src: BenchAgent, body: { uri: string; blk: boolean }): Promise<void> {
  const r = await ferryClient({ baseUrl: src.base }).POST("/migrations", { body });
  if (r.response.status !== 202) {
    throw new Error(`POST /migrations: ${r.response.status} ${JSON.stringify(r.error)}`);
  }
}

/** Whether files `a` and `b` hold the same bytes. */
async function sameFile(a: string, b: string): Promise<boolean> {
  const [x, y] = await Promise.all([Deno.readFile(a), Deno.readFile(b)]);
  if (x.length !== y.length || x.length % 4 !== 0) return false;
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length / 4);
  const v = new Uint32Array(y.buffer, y.byteOffset, y.length / 4);
  for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
  return true;
}

/** Writes `path` with `bytes` random bytes, and flushes them. */
async function randomImage(path: string, bytes: number): Promise<void> {
  const f = await Deno.open(path, { write: true, create: true, truncate: true });
  try {
    const buf = new Uint8Array(MIB);
    for (let at = 0; at < bytes; at += MIB) {
      for (let o = 0; o < MIB; o += 65536) crypto.getRandomValues(buf.subarray(o, o + 65536));
      for (let off = 0; off < buf.length;) off += await f.write(buf.subarray(off));
    }
    // On the device before anything is measured: its writeback would compete with theirs.
    await f.syncData();
  } finally {
    f.close();
  }
}

/** One migration between fresh agents of `ram` with the image (or without): the source's info. */
function migrateOnce(
  dir: string,
  ram: string,
  fill: "zero" | "random",
  blk: boolean,
): Promise<{ info: Json; wallMs: number; cpuMs: number }> {
  const size = `${DISK_BYTES / MIB}M`;
  const drive = (f: string) => blk ? ["--drive", `id=disk0,file=${dir}/${f},size=${size}`] : [];
  return withAgents(async (track) => {
    await Deno.remove(`${dir}/dst.img`).catch(() => {});
    const [dst, src] = await Promise.all([
      track(startAgent(["--ram", ram, ...drive("dst.img"), "--incoming", "tcp:127.0.0.1:0"])),
      track(
        startAgent(["--ram", ram, "--fill", fill, "--workload", "idle", ...drive("src.img")]),
      ),
    ]);
    await patch(src, "/parameters", { "max-bandwidth": 0 });
    for (const a of [src, dst]) await patch(a, "/capabilities", { "return-path": true });
    await waitForQuiet(0.25, 250, 3000);
    const cpu = sampleCpu({ source: src.pid, destination: dst.pid });
    const t0 = wallNow();
    await postMigration(src, { uri: dst.incomingUri!, blk });
    const info = await completedInfo(src, 60_000);
    const wallMs = wallNow() - t0;
    // A thread that ends while /proc is read can spoil one reading: read again then.
    let { processes } = cpu();
    if (!(processes.source.total >= 0 && processes.destination.total >= 0)) {
      processes = cpu().processes;
    }
    await completedInfo(dst, 10_000);
    return { info, wallMs, cpuMs: processes.source.total + processes.destination.total };
  });
}

/** One repetition of scenario D (see the module doc). */
export async function diskScenario(): Promise<DiskRun> {
  const dir = await Deno.makeTempDir({ prefix: "ferry-bench-disk-" });
  try {
    await randomImage(`${dir}/src.img`, DISK_BYTES);
    const quiet = await waitForQuiet(0.25, 250, 10_000);
    const raw = await runRaw("tcp", DISK_BYTES, CHUNK, CHUNK, "4k", {
      from: `${dir}/src.img`,
      to: `${dir}/raw.img`,
    });
    await Deno.remove(`${dir}/raw.img`);
    const disk = await migrateOnce(dir, "16M", "zero", true);
    if (disk.info.disk?.transferred !== DISK_BYTES) {
      throw new Error(`the disk migration moved ${JSON.stringify(disk.info.disk)}`);
    }
    if (!await sameFile(`${dir}/src.img`, `${dir}/dst.img`)) {
      throw new Error("the destination's image differs from the source's");
    }
    const info = disk.info;
    const bytesPerSec = info.disk.transferred / ((info["total-time"] - info["setup-time"]) / 1000);
    const withDisk = await migrateOnce(dir, "256M", "random", true);
    const ramAlone = await migrateOnce(dir, "256M", "random", false);
    return {
      quiet,
      raw,
      info,
      bytesPerSec,
      wallMs: disk.wallMs,
      cpuMs: disk.cpuMs,
      withDiskMs: withDisk.info["total-time"],
      ramAloneMs: ramAlone.info["total-time"],
    };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** The figures of scenario D (medians; ratios are medians of per-repetition ratios). */
export function figuresDisk(runs: readonly DiskRun[]): Figure[] {
  if (runs.length === 0) return [];
  const ratio = median(runs.map((r) => r.bytesPerSec / r.raw.bytesPerSec));
  const mib = DISK_BYTES / MIB;
  return [
    {
      id: "D.throughput",
      figure: `D: disk migration, ${mib} MiB random image, blk, TCP (16 MiB zero guest)`,
      value: median(runs.map((r) => r.bytesPerSec / 1e9)),
      unit: "GB/s",
      baseline: median(runs.map((r) => r.raw.bytesPerSec / 1e9)),
      baselineName: "raw file→TCP→file copy of the image, two Deno processes, 1 MiB, fdatasync",
      ratio,
      target: "ratio ≥ 0.8",
      pass: ratio >= 0.8,
    },
    {
      id: "D.cpu",
      figure: "D: CPU of both agents over the disk migration",
      value: median(runs.map((r) => r.cpuMs)),
      unit: "ms",
      baseline: median(runs.map((r) => r.raw.sinkCpuMs + r.raw.sourceCpuMs)),
      baselineName: "CPU of the raw copy's two processes",
      ratio: median(runs.map((r) => r.cpuMs / (r.raw.sinkCpuMs + r.raw.sourceCpuMs))),
      target: null,
      pass: null,
    },
    infoFigure(
      "D.wall",
      "D: disk migration, POST → completed (destination flushed)",
      median(runs.map((r) => r.wallMs)),
      "ms",
    ),
    {
      id: "D.total",
      figure: `D: total-time, 256 MiB random RAM + ${mib} MiB disk (blk)`,
      value: median(runs.map((r) => r.withDiskMs)),
      unit: "ms",
      baseline: median(runs.map((r) => r.ramAloneMs)),
      baselineName: "the same guest without the disk, fresh agents",
      ratio: median(runs.map((r) => r.withDiskMs / r.ramAloneMs)),
      target: null,
      pass: null,
    },
  ];
}
