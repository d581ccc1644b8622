/**
 * The destination's return path: its serialised writer.
 *
 * @module
 */
import type { Channel } from "../ports.ts";

/** Serialises return-path messages from the loader and the fault loop. */
export class ReturnPath {
  #tail: Promise<void> = Promise.resolve();
  /** A write failed: later messages are dropped (the link is being replaced). */
  broken = false;

  /** Writes to the incoming channel's other direction. */
  constructor(readonly channel: Channel) {}

  /** Queues one encoded message; resolves once written (or dropped). */
  send(bytes: Uint8Array): Promise<void> {
    this.#tail = this.#tail.then(async () => {
      if (this.broken) return;
      try {
        let off = 0;
        while (off < bytes.length) off += await this.channel.write(bytes.subarray(off));
      } catch {
        this.broken = true;
      }
    });
    return this.#tail;
  }
}
