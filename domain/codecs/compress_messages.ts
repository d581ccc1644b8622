/**
 * Messages between the compression pools and `compress_worker.ts`. One message carries a
 * whole batch of pages each way; buffers are transferred, never copied by `postMessage`.
 *
 * @module
 */

/** Deflate `n` pages from `input`, `unit` pages per zlib stream. */
export interface DeflateJob {
  t: "deflate";
  seq: number;
  /** `n * pageSize` bytes of pages at offset 0 (transferred, sent back in the reply). */
  input: ArrayBuffer;
  n: number;
  pageSize: number;
  unit: number;
  level: number;
}

/** Inflate the zlib streams packed in `input` into `n` pages, `unit` pages per stream. */
export interface InflateJob {
  t: "inflate";
  seq: number;
  /** The streams back to back from offset 0 (transferred, sent back in the reply). */
  input: ArrayBuffer;
  /** The length of each stream. */
  lengths: Uint32Array;
  n: number;
  pageSize: number;
  unit: number;
}

/** A job for a codec Worker. */
export type CodecJob = DeflateJob | InflateJob;

/** A codec Worker's answer to the job numbered `seq`. */
export interface CodecReply {
  seq: number;
  /** The job's input buffer, handed back for reuse. */
  input: ArrayBuffer;
  /** Deflate: the streams back to back; inflate: the `n * pageSize` bytes of pages. */
  data?: ArrayBuffer;
  /** Deflate: the length of each stream in `data`. */
  lengths?: Uint32Array;
  /** Inflate: why the data could not be inflated (a `CodecError` message). */
  error?: string;
}
