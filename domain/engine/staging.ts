/**
 * The source's staging: two ~1 MiB buffers that small frames are packed into, one written out
 * while the other fills, and the writes in flight to the byte sink, kept in order and bounded.
 *
 * @module
 */

/** The byte sink staging writes through (a ChannelWriter). */
export interface ByteSink {
  write(p: Uint8Array): Promise<void>;
}

/**
 * Each staging buffer (two per sender: the main channel and every multifd channel). Not advised
 * huge pages, by measurement: at 1 MiB a buffer holds no aligned 2 MiB page, and it is reused,
 * so the per-4 KiB-page cost of socket copies on hosts that have one is paid once per page, not
 * per byte sent. Measured 2026-12-06 (kernel 6.18, THP madvise): the first socket copy of a
 * freshly touched 4 KiB page runs at 0.33–0.42 GB/s, later copies of the same page at
 * 2.2–6 GB/s, so a staging buffer's first use costs ~3 ms once per migration. 1 MiB (it was
 * 256 KiB) holds 15 disk blocks with their headers: a block migration writes ~1 MiB at a time,
 * as a plain file copy does (a 256 MiB image to a file: 239–278 ms against 322–409 ms).
 */
export const STAGING_BYTES = 1024 * 1024;
/** Writes handed to the sink and not yet done, at most. */
const MAX_INFLIGHT = 2;

/**
 * Double-buffered staging over a byte sink. The caller packs frames at {@link off} of
 * {@link buf} / {@link view} after {@link ensure} made room, and moves `off` past them.
 */
export class Staging {
  /** Where the next staged byte goes in the current buffer. */
  off = 0;
  #sink: ByteSink;
  readonly #bufs = [new Uint8Array(STAGING_BYTES), new Uint8Array(STAGING_BYTES)];
  readonly #views = this.#bufs.map((b) => new DataView(b.buffer));
  #cur = 0;
  readonly #writes: Promise<void>[] = [];
  readonly #bufBusy: (Promise<void> | undefined)[] = [undefined, undefined];

  /** Stages for `sink`. */
  constructor(sink: ByteSink) {
    this.#sink = sink;
  }

  /** The buffer being filled. */
  get buf(): Uint8Array {
    return this.#bufs[this.#cur];
  }

  /** A DataView of the buffer being filled. */
  get view(): DataView {
    return this.#views[this.#cur];
  }

  /** Writes through a new sink (after a resume); anything staged for the old one is dropped. */
  retarget(sink: ByteSink): void {
    this.#sink = sink;
    this.off = 0;
    this.#writes.length = 0;
    this.#bufBusy.fill(undefined);
  }

  /** Makes room for `n` more bytes (≤ STAGING_BYTES), writing out what is staged if need be. */
  async ensure(n: number): Promise<void> {
    if (this.off + n > STAGING_BYTES) await this.swap();
  }

  /** Copies `bytes` (≤ STAGING_BYTES) into staging. */
  async append(bytes: Uint8Array): Promise<void> {
    await this.ensure(bytes.length);
    this.#bufs[this.#cur].set(bytes, this.off);
    this.off += bytes.length;
  }

  /** Hands `bytes` to the sink after what is in flight, keeping at most a few writes in flight. */
  async queue(bytes: Uint8Array): Promise<void> {
    const w = this.#sink.write(bytes);
    w.catch(() => {}); // observed when awaited below or in flush()
    this.#writes.push(w);
    if (this.#writes.length > MAX_INFLIGHT) await this.#writes.shift();
  }

  /** Starts writing the staged bytes and switches to the other staging buffer. */
  async swap(): Promise<void> {
    if (this.off === 0) return;
    const out = this.#bufs[this.#cur].subarray(0, this.off);
    const done = this.queue(out);
    this.#bufBusy[this.#cur] = this.#writes[this.#writes.length - 1];
    await done;
    this.#cur ^= 1;
    this.off = 0;
    // The other buffer may still be on its way out: wait before filling it.
    await this.#bufBusy[this.#cur];
  }

  /** Writes out everything staged and waits until the sink took all of it. */
  async flush(): Promise<void> {
    await this.swap();
    await Promise.all(this.#writes);
    this.#writes.length = 0;
  }
}
