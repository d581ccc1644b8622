/**
 * Worker entry for `CompressPool` and `DecompressPool`: deflates or inflates one batch of
 * pages per message with the zlib codec and answers with one message. See
 * `compress_messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { CodecJob, CodecReply, DeflateJob, InflateJob } from "./compress_messages.ts";
import { CodecError } from "./codec_error.ts";
import { zlib } from "./zlib.ts";

/** Deflates each group of `unit` pages into its own zlib stream, packed back to back. */
function deflate(m: DeflateJob): { reply: CodecReply; transfer: Transferable[] } {
  const pages = new Uint8Array(m.input, 0, m.n * m.pageSize);
  const unitBytes = m.unit * m.pageSize;
  const streams: Uint8Array[] = [];
  let total = 0;
  for (let off = 0; off < pages.length; off += unitBytes) {
    const s = zlib.compress(pages.subarray(off, off + unitBytes), m.level);
    streams.push(s);
    total += s.length;
  }
  const data = new Uint8Array(total);
  const lengths = new Uint32Array(streams.length);
  let d = 0;
  for (let k = 0; k < streams.length; k++) {
    data.set(streams[k], d);
    d += streams[k].length;
    lengths[k] = streams[k].length;
  }
  return {
    reply: { seq: m.seq, input: m.input, data: data.buffer, lengths },
    transfer: [m.input, data.buffer, lengths.buffer],
  };
}

/** Inflates each stream into its `unit` pages; a bad stream fails the whole batch. */
function inflate(m: InflateJob): { reply: CodecReply; transfer: Transferable[] } {
  const pages = new Uint8Array(m.n * m.pageSize);
  const unitBytes = m.unit * m.pageSize;
  let off = 0;
  try {
    for (let k = 0; k < m.lengths.length; k++) {
      const stream = new Uint8Array(m.input, off, m.lengths[k]);
      const start = k * unitBytes;
      zlib.decompress(stream, pages.subarray(start, Math.min(start + unitBytes, pages.length)));
      off += m.lengths[k];
    }
  } catch (e) {
    if (!(e instanceof CodecError)) throw e;
    return { reply: { seq: m.seq, input: m.input, error: e.message }, transfer: [m.input] };
  }
  return {
    reply: { seq: m.seq, input: m.input, data: pages.buffer },
    transfer: [m.input, pages.buffer],
  };
}

/** Runs one job and answers through `answer`. */
function run(m: CodecJob, answer: (r: CodecReply, t: Transferable[]) => void): void {
  const { reply, transfer } = m.t === "deflate" ? deflate(m) : inflate(m);
  answer(reply, transfer);
}

/**
 * Jobs come straight from the pool's thread, or (when the main thread started this Worker
 * for a data-path Worker) through the port in a `port` message; `close` on that port ends it.
 */
self.onmessage = (e: MessageEvent<CodecJob | { t: "port"; port: MessagePort }>) => {
  const m = e.data;
  if (m.t !== "port") return run(m, (r, t) => self.postMessage(r, t));
  const port = m.port;
  port.onmessage = (p: MessageEvent<CodecJob | { t: "close" }>) => {
    const job = p.data;
    if (job.t === "close") {
      port.close();
      self.close();
    } else run(job, (r, t) => port.postMessage(r, t));
  };
};
