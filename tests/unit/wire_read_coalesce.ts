/**
 * Read coalescing (FrameReader.coalesceUs, Channel.readCoalesceUs): over a real TCP socket
 * fed in small pieces by a writer on another thread, a reader that pauses after short reads
 * inside a large payload reads the same bytes in far fewer, larger reads; with coalescing
 * off it reads as the pieces come. TCP channels offer it unless the peer is on loopback (whose
 * sender keeps a 1 MiB send buffer: adapters/channels/send_buffer.ts); unix ones do not.
 */
import assert from "node:assert/strict";
import type { Channel } from "../../domain/ports.ts";
import {
  encodePageRun,
  encodeStreamHeader,
  FrameReader,
  RUN_HEADER_SIZE,
} from "../../domain/wire/mod.ts";
import { listenTcp, TCP_READ_COALESCE_US, tcpReadCoalesceUs } from "../../adapters/channels/tcp.ts";
import { listenUnix } from "../../adapters/channels/unix.ts";
import { concat } from "../helpers/bytes.ts";

const PAGE = 4096;
const RUNS = 6;
const RUN_PAGES = 256;

/** Writes `bytes` to `port` in 16 KiB pieces, yielding between pieces, from a Worker. */
function trickle(port: number, bytes: Uint8Array): { done: Promise<void>; stop(): void } {
  const src = `self.onmessage = async (e) => {
    const { port, bytes } = e.data;
    const c = await Deno.connect({ hostname: "127.0.0.1", port });
    for (let o = 0; o < bytes.length; o += 16384) {
      let w = 0; const piece = bytes.subarray(o, Math.min(bytes.length, o + 16384));
      while (w < piece.length) w += await c.write(piece.subarray(w));
      await new Promise((r) => setTimeout(r, 0));
    }
    c.close();
    self.postMessage("done");
  };`;
  const w = new Worker(URL.createObjectURL(new Blob([src], { type: "text/javascript" })), {
    type: "module",
  });
  const done = new Promise<void>((resolve, reject) => {
    w.onmessage = () => resolve();
    w.onerror = (e) => (e.preventDefault(), reject(new Error(e.message)));
  });
  w.postMessage({ port, bytes });
  return { done, stop: () => w.terminate() };
}

/** Reads the runs through a FrameReader with `coalesceUs`; returns the payloads and the read count. */
async function readRuns(coalesceUs: number, bytes: Uint8Array) {
  const listener = listenTcp("127.0.0.1", 0);
  const port = Number(listener.uri.split(":").pop());
  const writer = trickle(port, bytes);
  const channel = await listener.accept();
  listener.close();
  let reads = 0;
  const counting: Channel = {
    read: (p) => (reads++, channel.read(p)),
    write: (p) => channel.write(p),
    closeWrite: () => channel.closeWrite(),
    close: () => channel.close(),
  };
  try {
    assert.equal(channel.readCoalesceUs, undefined, "a loopback TCP channel does not pause");
    const reader = new FrameReader(counting);
    reader.coalesceUs = coalesceUs;
    await reader.readStreamHeader();
    const got = new Uint8Array(RUNS * RUN_PAGES * PAGE);
    const header = new Uint8Array(RUN_HEADER_SIZE);
    for (let i = 0; i < RUNS; i++) {
      await reader.next();
      await reader.readInto(header);
      await reader.readInto(got.subarray(i * RUN_PAGES * PAGE, (i + 1) * RUN_PAGES * PAGE));
    }
    await writer.done;
    return { got, reads, naps: reader.naps };
  } finally {
    channel.close();
    writer.stop();
  }
}

Deno.test("read coalescing: the same bytes in far fewer reads; off, reads follow the pieces", async () => {
  const data = new Uint8Array(RUNS * RUN_PAGES * PAGE);
  crypto.getRandomValues(data.subarray(0, 65536));
  for (let o = 65536; o < data.length; o += 65536) data.set(data.subarray(0, 65536), o);
  for (let i = 0; i < data.length; i += PAGE) data[i] = i / PAGE; // every page distinct
  const parts = [encodeStreamHeader()];
  for (let i = 0; i < RUNS; i++) {
    const run = data.subarray(i * RUN_PAGES * PAGE, (i + 1) * RUN_PAGES * PAGE);
    parts.push(encodePageRun(0, i * RUN_PAGES, PAGE, run));
  }
  const bytes = concat(parts);

  // ~390 reads plain vs ~52 coalesced here. On a busy machine a descheduled plain reader
  // also finds pieces piled up: rounds go on (five at most) until coalescing read less often.
  const rounds: string[] = [];
  for (let round = 0; round < 5; round++) {
    const plain = await readRuns(0, bytes);
    const coalesced = await readRuns(20_000, bytes);
    assert.deepEqual(plain.got, data);
    assert.deepEqual(coalesced.got, data);
    assert.equal(plain.naps, 0);
    assert.ok(coalesced.naps > 0, "the coalescing reader paused after short reads");
    rounds.push(`${coalesced.reads} coalesced vs ${plain.reads} plain`);
    if (coalesced.reads < plain.reads) return;
  }
  assert.fail(`coalescing never saved reads: ${rounds.join("; ")}`);
});

Deno.test("read coalescing: unix channels do not offer it", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const listener = listenUnix(`${dir}/s.sock`);
    const conn = await Deno.connect({ transport: "unix", path: `${dir}/s.sock` });
    const channel = await listener.accept();
    assert.equal(channel.readCoalesceUs, undefined);
    channel.close();
    conn.close();
    listener.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("read coalescing: TCP channels offer it to peers off loopback only", () => {
  const tcp = (hostname: string): Deno.NetAddr => ({ transport: "tcp", hostname, port: 4444 });
  assert.equal(TCP_READ_COALESCE_US, 200);
  for (const far of ["192.0.2.7", "10.1.2.3", "2001:db8::1", "::ffff:192.0.2.7"]) {
    assert.equal(tcpReadCoalesceUs(tcp(far)), 200, far);
  }
  for (const near of ["127.0.0.1", "127.3.4.5", "::1", "::ffff:127.0.0.1"]) {
    assert.equal(tcpReadCoalesceUs(tcp(near)), undefined, near);
  }
});
