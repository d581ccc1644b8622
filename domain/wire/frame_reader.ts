/**
 * The destination's streaming frame reader: one fixed buffer, no allocation sized by a
 * peer's length field, big payloads read straight into their target (guest RAM).
 *
 * @module
 */

import type { Channel } from "../ports.ts";
import {
  decodeFrameHeader,
  decodeStreamHeader,
  FRAME_HEADER_SIZE,
  type FrameHeader,
  frameName,
  MAX_SMALL_PAYLOAD,
  STREAM_HEADER_SIZE,
  type StreamKind,
} from "./frames.ts";
import { WireError } from "./wire_error.ts";

/**
 * Default size of the reader's internal buffer (1 MiB). Not advised huge pages: page runs are
 * read straight into guest RAM, and this reused buffer pays the first-copy cost of its 256
 * pages once (~3 ms; see STAGING in domain/engine/page_sender.ts for the figures).
 */
export const DEFAULT_READER_BUFFER = 1 << 20;
/** Smallest internal buffer allowed: it must hold a 64 KiB payload plus a frame header. */
export const MIN_READER_BUFFER = 128 << 10;
/**
 * What a reader holds before its stream shows it is one: a peer that connects and says little
 * (a probe, a page channel waiting to be claimed) costs this, not the whole buffer.
 */
export const FIRST_READER_BUFFER = 4 << 10;
/** Remainders of `readInto` at least this big bypass the buffer and land in the target. */
const DIRECT_READ_MIN = 64 << 10;
/** How far past what it needs the reader reads into its own buffer. */
const READ_AHEAD = 64 << 10;
/**
 * How far it reads ahead for the first header after a payload read straight into its target.
 * What follows a page run is most often another one, whose pages would otherwise land in this
 * buffer first (up to 64 KiB of each run) and be copied into guest RAM a second time. Measured
 * 2026-12-07 (1 GiB random guest over loopback TCP, 1 MiB runs, 4 alternating pairs): 4.53–4.75
 * GB/s against 4.23–4.44 with the source's send buffer capped
 * (adapters/channels/send_buffer.ts), 3.51–4.08 against 3.59–3.65 without.
 * Streams of small frames (zero runs, device state) keep the full read-ahead.
 */
const AFTER_DIRECT_READ_AHEAD = 64;
/** A direct read shorter than this is "short": the kernel had little queued. */
const SHORT_READ = 256 << 10;
const NAP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Reads frames from a {@link Channel}. Call `readStreamHeader()` once, then `next()` per frame
 * and consume exactly its payload with `readPayload`, `readBytes`, `readInto` and `skip`.
 * Malformed or truncated input throws {@link WireError}; misuse (reading past the current
 * payload, calling `next()` with payload left) throws a plain `Error`.
 */
export class FrameReader {
  #ch: Channel;
  #buf: Uint8Array<ArrayBuffer>;
  /** The size the buffer grows to once the stream needs it. */
  readonly #capacity: number;
  #start = 0;
  #end = 0;
  #remaining = 0;
  #type = -1;
  #started = false;
  #bytesRead = 0;
  /** The next header read's read-ahead (small right after a direct read; see above). */
  #readAhead = READ_AHEAD;
  /**
   * Read coalescing (µs; 0 = off): inside a large payload, a short read is followed by a
   * pause of this long (a blocking wait: only for a reader that owns its thread, i.e. a
   * data-path Worker with nothing else to read meanwhile). Defaults to off; the destination
   * turns it on from its channel's `readCoalesceUs` while nothing is latency-sensitive.
   */
  coalesceUs = 0;
  /** Pauses taken so far (see `coalesceUs`). */
  naps = 0;

  /**
   * Wraps `channel`; `bufferSize` is the one internal buffer (default 1 MiB), allocated once
   * the stream has delivered FIRST_READER_BUFFER bytes or needs more room (until then a small
   * one serves: a connection that says little costs little).
   */
  constructor(channel: Channel, bufferSize = DEFAULT_READER_BUFFER) {
    if (!Number.isInteger(bufferSize) || bufferSize < MIN_READER_BUFFER) {
      throw new RangeError(`reader buffer of ${bufferSize} bytes is below ${MIN_READER_BUFFER}`);
    }
    this.#ch = channel;
    this.#capacity = bufferSize;
    this.#buf = new Uint8Array(FIRST_READER_BUFFER);
  }

  /** Bytes the internal buffer holds now (small until the stream needs the whole buffer). */
  get bufferSize(): number {
    return this.#buf.length;
  }

  /** All stream bytes consumed so far: stream header, frame headers and payload bytes. */
  get bytesRead(): number {
    return this.#bytesRead;
  }

  /** Payload bytes of the current frame not consumed yet. */
  get remaining(): number {
    return this.#remaining;
  }

  /**
   * Reads and checks the 8-byte stream header; must be called once, first. Resolves to the
   * stream's kind; with `expect`, any other kind is a WireError.
   */
  async readStreamHeader(expect: StreamKind | null = "main"): Promise<StreamKind> {
    if (this.#started) throw new Error("stream header already read");
    await this.#fill(STREAM_HEADER_SIZE, "the stream header");
    const kind = decodeStreamHeader(
      this.#buf.subarray(this.#start, this.#start + STREAM_HEADER_SIZE),
    );
    if (expect !== null && kind !== expect) {
      throw new WireError(`expected a ${expect} stream, got a ${kind} channel`);
    }
    this.#consume(STREAM_HEADER_SIZE);
    this.#started = true;
    return kind;
  }

  /** Reads and checks the next frame header (type known, length within the frame table). */
  async next(): Promise<FrameHeader> {
    if (!this.#started) throw new Error("next() before readStreamHeader()");
    if (this.#remaining !== 0) {
      throw new Error(
        `${this.#remaining} payload bytes of the ${frameName(this.#type)} frame not consumed`,
      );
    }
    if (this.#end - this.#start < FRAME_HEADER_SIZE) await this.#fill(FRAME_HEADER_SIZE, "");
    const h = decodeFrameHeader(this.#buf, this.#start);
    this.#consume(FRAME_HEADER_SIZE);
    this.#type = h.type;
    this.#remaining = h.length;
    return h;
  }

  /**
   * Returns the whole remaining payload of a small frame (≤ 64 KiB) as a view into the
   * internal buffer, valid until the next call on this reader.
   */
  async readPayload(): Promise<Uint8Array> {
    if (this.#remaining > MAX_SMALL_PAYLOAD) {
      throw new Error(`readPayload() on ${this.#remaining} bytes; use readInto()`);
    }
    return await this.readBytes(this.#remaining);
  }

  /** Returns the next `n` payload bytes as a view valid until the next call on this reader. */
  async readBytes(n: number): Promise<Uint8Array> {
    this.#claim(n);
    if (n > MAX_SMALL_PAYLOAD) throw new Error(`readBytes(${n}) exceeds ${MAX_SMALL_PAYLOAD}`);
    if (this.#end - this.#start < n) await this.#fill(n, this.#payloadWhat());
    const view = this.#buf.subarray(this.#start, this.#start + n);
    this.#consume(n);
    this.#remaining -= n;
    return view;
  }

  /** Reads exactly `target.length` payload bytes into `target` (big parts read directly). */
  async readInto(target: Uint8Array): Promise<void> {
    const n = target.length;
    this.#claim(n);
    const have = Math.min(this.#end - this.#start, n);
    target.set(this.#buf.subarray(this.#start, this.#start + have));
    this.#consume(have);
    let done = have;
    if (n - done >= DIRECT_READ_MIN) {
      while (done < n) {
        const r = await this.#ch.read(target.subarray(done));
        if (r === null) this.#truncated(n - done);
        done += r;
        this.#bytesRead += r;
        if (this.coalesceUs > 0 && done < n && r < SHORT_READ) {
          Atomics.wait(NAP, 0, 0, this.coalesceUs / 1000);
          this.naps++;
        }
      }
      this.#readAhead = AFTER_DIRECT_READ_AHEAD;
    } else if (done < n) {
      await this.#fill(n - done, this.#payloadWhat());
      target.set(this.#buf.subarray(this.#start, this.#start + n - done), done);
      this.#consume(n - done);
    }
    this.#remaining -= n;
  }

  /** Discards the next `n` payload bytes (default: the rest of the current payload). */
  async skip(n = this.#remaining): Promise<void> {
    this.#claim(n);
    let left = n;
    const have = Math.min(this.#end - this.#start, left);
    this.#consume(have);
    left -= have;
    if (left > 0) this.#grow(0);
    while (left > 0) {
      const r = await this.#ch.read(this.#buf);
      if (r === null) this.#truncated(left);
      const used = Math.min(r, left);
      this.#start = 0;
      this.#end = r;
      this.#consume(used);
      left -= used;
    }
    this.#remaining -= n;
  }

  #claim(n: number): void {
    if (!Number.isInteger(n) || n < 0 || n > this.#remaining) {
      throw new Error(`cannot consume ${n} bytes: ${this.#remaining} left in this frame`);
    }
  }

  #consume(n: number): void {
    this.#start += n;
    this.#bytesRead += n;
    if (this.#start === this.#end) this.#start = this.#end = 0;
  }

  #payloadWhat(): string {
    return `a ${frameName(this.#type)} payload`;
  }

  #truncated(missing: number): never {
    throw new WireError(
      `migration stream truncated: ${missing} bytes of ${this.#payloadWhat()} missing`,
      "truncated",
    );
  }

  /**
   * Allocates the whole buffer once the stream has shown it is one (FIRST_READER_BUFFER bytes
   * consumed) or `n` bytes must be held at once.
   */
  #grow(n: number): void {
    if (this.#buf.length >= this.#capacity) return;
    if (n <= this.#buf.length && this.#bytesRead < FIRST_READER_BUFFER) return;
    const grown = new Uint8Array(this.#capacity);
    grown.set(this.#buf.subarray(this.#start, this.#end));
    this.#end -= this.#start;
    this.#start = 0;
    this.#buf = grown;
  }

  /** Ensures `n` contiguous buffered bytes (`n` ≤ buffer size); `what` names them for errors. */
  async #fill(n: number, what: string): Promise<void> {
    this.#grow(n);
    if (this.#start + n > this.#buf.length) {
      this.#buf.copyWithin(0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
    }
    while (this.#end - this.#start < n) {
      // Read ahead only a little: big payloads are read straight into their target.
      const want = Math.max(n - (this.#end - this.#start), this.#readAhead);
      this.#readAhead = READ_AHEAD;
      const r = await this.#ch.read(
        this.#buf.subarray(this.#end, Math.min(this.#buf.length, this.#end + want)),
      );
      if (r === null) {
        const have = this.#end - this.#start;
        if (what === "") {
          throw new WireError(
            have === 0
              ? "migration stream truncated: end of stream before the EOF frame"
              : `migration stream truncated: frame header has ${have} of ${n} bytes`,
            "truncated",
          );
        }
        throw new WireError(
          `migration stream truncated: ${n - have} bytes of ${what} missing`,
          "truncated",
        );
      }
      this.#end += r;
    }
  }
}
