/**
 * Small pieces of the destination's loader: which errors are a broken
 * link (postcopy pauses) rather than a bad stream (the attempt fails), and the return
 * path's serialised writer.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { WireError } from "../wire/wire_error.ts";

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
