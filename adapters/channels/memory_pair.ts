/**
 * An in-memory duplex channel pair for tests: what one end writes the other reads.
 *
 * Each direction buffers at most `capacity` bytes: a write takes what fits (at least one
 * byte) and waits while the buffer is full, so a peer that stops reading stalls the writer
 * like a full socket buffer. `closeWrite()` makes the peer read end of stream after the
 * buffered bytes. `close()` makes this end's pending and later operations reject with
 * ChannelClosedError, the peer's reads return the buffered bytes then `null`, and the peer's
 * writes reject with BrokenPipeError.
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";
import { BrokenPipeError, ChannelClosedError } from "./errors.ts";

/** Default bytes buffered per direction (a typical socket buffer's order of magnitude). */
export const DEFAULT_MEMORY_CAPACITY = 64 * 1024;

/** Creates a connected pair `[a, b]`: a's writes are b's reads and the other way round. */
export function memoryChannelPair(
  capacity: number = DEFAULT_MEMORY_CAPACITY,
): [MemoryChannel, MemoryChannel] {
  if (!Number.isInteger(capacity) || capacity < 1) {
    throw new RangeError(`capacity must be a positive integer, got ${capacity}`);
  }
  const ab = new Pipe(capacity);
  const ba = new Pipe(capacity);
  return [new MemoryChannel(ba, ab), new MemoryChannel(ab, ba)];
}

/** One direction: a bounded byte queue with its two ends' states. */
class Pipe {
  readonly capacity: number;
  readonly chunks: Uint8Array[] = [];
  buffered = 0;
  /** The writing end is done: the reader gets `null` once the queue is empty. */
  eof = false;
  /** The reading end is gone: writes fail with a broken pipe. */
  readerGone = false;
  #waiters: (() => void)[] = [];

  constructor(capacity: number) {
    this.capacity = capacity;
  }

  /** Resolves on the next change of this pipe's state. */
  changed(): Promise<void> {
    return new Promise((resolve) => this.#waiters.push(resolve));
  }

  /** Wakes every operation waiting on this pipe (they re-check their conditions). */
  notify(): void {
    const waiters = this.#waiters;
    this.#waiters = [];
    for (const wake of waiters) wake();
  }
}

/** One end of a memoryChannelPair. */
export class MemoryChannel implements Channel {
  readonly #in: Pipe;
  readonly #out: Pipe;
  #closed = false;
  #writeClosed = false;

  /** Use memoryChannelPair. */
  constructor(incoming: Pipe, outgoing: Pipe) {
    this.#in = incoming;
    this.#out = outgoing;
  }

  /** Bytes written by the peer and not yet read here. */
  get readable(): number {
    return this.#in.buffered;
  }

  /** Reads up to `p.length` buffered bytes, waiting for some; `null` once the peer is done. */
  async read(p: Uint8Array): Promise<number | null> {
    const pipe = this.#in;
    for (;;) {
      if (this.#closed) throw new ChannelClosedError("read on a closed channel");
      if (p.length === 0) return 0;
      if (pipe.buffered > 0) {
        const n = takeInto(pipe, p);
        pipe.notify();
        return n;
      }
      if (pipe.eof) return null;
      await pipe.changed();
    }
  }

  /** Copies as much of `p` as fits (waiting for room); resolves to the count. */
  async write(p: Uint8Array): Promise<number> {
    const pipe = this.#out;
    for (;;) {
      if (this.#closed) throw new ChannelClosedError("write on a closed channel");
      if (this.#writeClosed) throw new ChannelClosedError("write after closeWrite");
      if (pipe.readerGone) throw new BrokenPipeError();
      if (p.length === 0) return 0;
      const room = pipe.capacity - pipe.buffered;
      if (room > 0) {
        const n = Math.min(room, p.length);
        pipe.chunks.push(p.slice(0, n));
        pipe.buffered += n;
        pipe.notify();
        return n;
      }
      await pipe.changed();
    }
  }

  /** The peer reads end of stream after what is buffered; later writes here reject. */
  closeWrite(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new ChannelClosedError("closeWrite on a closed channel"));
    }
    this.#writeClosed = true;
    this.#out.eof = true;
    this.#out.notify();
    return Promise.resolve();
  }

  /** Closes both directions; see the module doc for what each side then sees. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#out.eof = true;
    this.#in.readerGone = true;
    this.#in.chunks.length = 0;
    this.#in.buffered = 0;
    this.#out.notify();
    this.#in.notify();
  }
}

function takeInto(pipe: Pipe, p: Uint8Array): number {
  let n = 0;
  while (n < p.length && pipe.chunks.length > 0) {
    const head = pipe.chunks[0];
    const take = Math.min(head.length, p.length - n);
    p.set(take === head.length ? head : head.subarray(0, take), n);
    n += take;
    if (take === head.length) pipe.chunks.shift();
    else pipe.chunks[0] = head.subarray(take);
  }
  pipe.buffered -= n;
  return n;
}
