/**
 * Small pieces of the destination's loader: the zero-page check, which errors are a broken
 * link (postcopy pauses) rather than a bad stream (the attempt fails), and the return
 * path's serialised writer.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { WireError } from "../wire/wire_error.ts";

/** True when page `page` of `w` (a block's words) is all zero. */
export function isZeroPage(w: Uint32Array, page: number): boolean {
  const end = (page + 1) * 1024;
  for (let i = page * 1024; i < end; i += 8) {
    if ((w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7]) !== 0) {
      return false;
    }
  }
  return true;
}

const LINK_ERRORS = new Set([
  "BrokenPipe",
  "ConnectionReset",
  "ConnectionAborted",
  "NotConnected",
  "BadResource",
  "Interrupted",
  "UnexpectedEof",
  "TimedOut",
  "ChannelClosedError",
  "BrokenPipeError",
]);

/** A broken link (pause in postcopy) rather than a malformed stream or state (fail). */
export function isLinkError(e: unknown): boolean {
  if (e instanceof WireError) return /truncated|closed/.test(e.message);
  return e instanceof Error && LINK_ERRORS.has(e.name);
}

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
