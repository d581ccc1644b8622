/**
 * What the source has heard on the return path of its current channel (QEMU's
 * source_return_path_thread state): the destination's SHUT, page requests waiting to be
 * served, received bitmaps and the RESUME_ACK of a recovery, and the first error. A resume
 * starts it afresh on the new channel; messages of an old channel are ignored.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import type { RamBlockLayout } from "../../adapters/memory/layout.ts";
import { WireError } from "../wire/mod.ts";
import { RESUME_ACK_VALUE } from "../wire/return_path.ts";
import { readReturnPath } from "./return_path_reader.ts";
import { PeerError } from "./failure.ts";

/**
 * Page requests waiting at most: a destination has one vCPU waiting on at most a page or two
 * and asks again only every 100 ms, and requests are served ahead of everything else.
 */
export const MAX_QUEUED_REQUESTS = 1024;

/** The return path's state, for the source run. */
export class SourceReturnPath {
  /** The destination's SHUT value (0 = fine), or null before it. */
  shut: number | null = null;
  resumeAck = false;
  bitmapsIn = 0;
  /** Page requests (postcopy faults), oldest first. */
  readonly requests: { first: number; count: number }[] = [];
  /**
   * The package with POSTCOPY_LISTEN went out: page requests are queued and served first.
   * Before it a request is counted and dropped (precopy sends every page anyway), so nothing
   * a destination asks for in precopy piles up.
   */
  postcopy = false;
  /** A recovery handshake runs: received bitmaps are expected (else refused, as QEMU does). */
  recovering = false;
  #error: Error | null = null;
  #channel: Channel | null = null;

  /**
   * Starts reading `channel`'s return path (forgetting what an earlier channel said).
   * `onBitmap` takes a block's received bitmap; `onRequest` counts a page request;
   * `wake` runs after every message.
   */
  read(
    channel: Channel,
    layout: readonly RamBlockLayout[],
    pageSize: number,
    hooks: {
      onBitmap(block: number, bits: Uint8Array): void;
      onRequest(): void;
      wake(): void;
      /** The destination's reason for refusing or failing the stream. */
      onReason?(text: string): void;
    },
  ): void {
    this.#channel = channel;
    this.#error = null;
    this.shut = null;
    this.resumeAck = false;
    this.bitmapsIn = 0;
    this.requests.length = 0;
    readReturnPath(channel, layout, pageSize, {
      onReason: (text) => hooks.onReason?.(text),
      onShut: (error) => {
        this.shut = error;
        hooks.wake();
      },
      onRequest: (first, count) => {
        if (this.postcopy && this.requests.length >= MAX_QUEUED_REQUESTS) {
          throw new WireError(`RP: more than ${MAX_QUEUED_REQUESTS} page requests waiting`);
        }
        if (this.postcopy) this.requests.push({ first, count });
        hooks.onRequest();
        hooks.wake();
      },
      onReceivedBitmap: (block, bits) => {
        if (!this.recovering) throw new WireError("RP: received bitmap outside a recovery");
        hooks.onBitmap(block, bits);
        this.bitmapsIn++;
        hooks.wake();
      },
      onResumeAck: (value) => {
        if (value !== RESUME_ACK_VALUE) {
          this.#error = new WireError(`illegal resume_ack value ${value}`);
        } else this.resumeAck = true;
        hooks.wake();
      },
    }).catch((e) => {
      if (channel !== this.#channel) return; // an old channel after a resume
      this.#error ??= e instanceof Error ? e : new Error(String(e)); // the first one counts
      hooks.wake();
    });
  }

  /** Throws the return path's error, or the destination's failure (a non-zero SHUT). */
  check(): void {
    if (this.#error) throw this.#error;
    if (this.shut !== null && this.shut !== 0) {
      throw new PeerError(this.shut, `RP: Sibling indicated error ${this.shut}`);
    }
  }
}
