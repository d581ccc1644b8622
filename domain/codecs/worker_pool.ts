/**
 * A fixed set of codec Workers, one job at a time each, whose answers are delivered in
 * submission order: a sender that submits batches in wire order and awaits them in any
 * order still sees them complete in wire order. Shared by `CompressPool` and
 * `DecompressPool`.
 *
 * @module
 */
import type { CodecJob, CodecReply, DeflateJob, InflateJob } from "./compress_messages.ts";
import { type CodecEndpoint, codecThreads, type CodecThreadSource } from "./codec_threads.ts";

/** A job without its sequence number (the pool numbers jobs). */
export type JobBody = Omit<DeflateJob, "seq"> | Omit<InflateJob, "seq">;

interface Job {
  body: JobBody;
  transfer: Transferable[];
  reply: CodecReply | null;
  resolve(r: CodecReply): void;
  reject(e: Error): void;
}

/** Runs codec jobs on `threads` Workers running `compress_worker.ts`. */
export class WorkerPool {
  readonly #workers: CodecEndpoint[];
  /** The job each worker runs, or null when it is idle. */
  readonly #running: (Job | null)[] = [];
  /** Jobs waiting for a worker, oldest first. */
  readonly #queue: Job[] = [];
  /** Every job not yet delivered, in submission order. */
  readonly #order: Job[] = [];
  #seq = 0;
  #closed = false;

  /**
   * Starts `threads` (an integer ≥ 1) Workers from `source` (by default this thread's:
   * its own Workers, or, in a data-path Worker, ones the main thread starts).
   */
  constructor(threads: number, source: CodecThreadSource = codecThreads()) {
    if (!Number.isInteger(threads) || threads < 1) {
      throw new RangeError(`codec pool: ${threads} is not a thread count`);
    }
    this.#workers = source(threads, (m) => this.#fail(`codec worker crashed: ${m}`));
    this.#workers.forEach((w, i) => {
      w.onmessage = (e: MessageEvent<CodecReply>) => this.#done(i, e.data);
      this.#running.push(null);
    });
  }

  /** The number of Workers. */
  get threads(): number {
    return this.#workers.length;
  }

  /** Workers with no job right now. */
  get idle(): number {
    return this.#closed ? 0 : this.#running.filter((j) => j === null).length;
  }

  /** Whether `close` ran (or a worker crashed). */
  get closed(): boolean {
    return this.#closed;
  }

  /** Runs `body` on an idle worker now; null (and nothing done) when every worker is busy. */
  tryRun(body: JobBody, transfer: Transferable[]): Promise<CodecReply> | null {
    this.#checkOpen();
    const i = this.#running.indexOf(null);
    if (i < 0) return null;
    const { job, promise } = this.#job(body, transfer);
    this.#start(i, job);
    return promise;
  }

  /** Runs `body` on the next idle worker, waiting in a queue while all are busy. */
  run(body: JobBody, transfer: Transferable[]): Promise<CodecReply> {
    this.#checkOpen();
    const { job, promise } = this.#job(body, transfer);
    const i = this.#running.indexOf(null);
    if (i < 0) this.#queue.push(job);
    else this.#start(i, job);
    return promise;
  }

  /** Terminates every Worker; jobs not yet answered reject. Idempotent. */
  close(): void {
    this.#fail("codec pool closed");
  }

  #checkOpen(): void {
    if (this.#closed) throw new Error("codec pool closed");
  }

  #job(body: JobBody, transfer: Transferable[]): { job: Job; promise: Promise<CodecReply> } {
    let resolve!: (r: CodecReply) => void;
    let reject!: (e: Error) => void;
    const promise = new Promise<CodecReply>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    // A caller that dropped its promise must not crash the process when close() rejects it.
    promise.catch(() => {});
    const job: Job = { body, transfer, reply: null, resolve, reject };
    this.#order.push(job);
    return { job, promise };
  }

  #start(i: number, job: Job): void {
    this.#running[i] = job;
    const msg = { ...job.body, seq: this.#seq++ } as CodecJob;
    this.#workers[i].postMessage(msg, job.transfer);
  }

  #done(i: number, reply: CodecReply): void {
    const job = this.#running[i];
    if (this.#closed || job === null) return;
    job.reply = reply;
    this.#running[i] = null;
    const next = this.#queue.shift();
    if (next) this.#start(i, next);
    while (this.#order.length > 0 && this.#order[0].reply !== null) {
      const j = this.#order.shift()!;
      j.resolve(j.reply!);
    }
  }

  #fail(reason: string): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#workers) w.close();
    const err = new Error(reason);
    for (const j of this.#order) j.reject(err);
    this.#order.length = 0;
    this.#queue.length = 0;
    this.#running.fill(null);
  }
}
