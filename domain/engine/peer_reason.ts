/**
 * The destination's reason, on the source (beyond QEMU): a destination that refuses or
 * fails a stream sends its error text back before it closes (docs/wire-format.md, "The
 * destination's reason"). The source keeps the first one; when its own channel breaks it
 * waits briefly for one, so its `error-desc` says why the destination stopped rather than
 * "Broken pipe". The other way, a cancelled source ends its stream with a CANCEL frame when
 * it can, so the destination reports a cancel rather than a truncated stream. Only sockets (tcp:, unix:) carry anything back: exec: and file: are one-way.
 *
 * @module
 */
import { readFull, writeAll } from "./channel_io.ts";
import type { Channel } from "../ports.ts";
import { PeerError } from "./failure.ts";
import { decodeRpReason, encodeRpReason, isRpReason } from "../wire/peer_reason.ts";
import { encodeRpShut, RP_HEADER_SIZE } from "../wire/return_path.ts";

/** How long a source whose channel broke waits for the destination's reason. */
export const REASON_WAIT_MS = 200;

/**
 * How long a cancelled source may go on writing to end its stream with CANCEL at a frame
 * boundary before its channel is shut (a write stuck on a peer that stopped reading).
 */
export const CANCEL_GRACE_MS = 300;

/** The destination refused or failed the stream, and said why. */
export class DestinationRefused extends PeerError {
  /** `reason` is the destination's own error text. */
  constructor(readonly reason: string) {
    super(1, `destination refused: ${reason}`);
    this.name = "DestinationRefused";
  }
}

/** The destination read the source's CANCEL frame: the migration was cancelled there. */
export class SourceCancelled extends Error {
  constructor() {
    super("migration cancelled by the source");
    this.name = "SourceCancelled";
  }
}

/** True for migration URIs whose channel is a socket (the destination can answer on it). */
export function isTwoWayUri(uri: string): boolean {
  return uri.startsWith("tcp:") || uri.startsWith("unix:");
}

/** Sends the destination's reason on `channel`'s other direction; never throws. */
export async function sendReason(channel: Channel, text: string): Promise<void> {
  const bytes = encodeRpReason(text);
  try {
    await writeAll(channel, bytes);
  } catch {
    /* the source is gone: nobody to tell */
  }
}

/** How long a destination that sent its reason waits for the source to hang up. */
export const REASON_LINGER_MS = 500;

/**
 * After the reason: half-closes and reads (discarding) until the source hangs up, at most
 * `REASON_LINGER_MS`. Closing with unread bytes would send a reset, which can make the source
 * lose the reason still waiting in its receive buffer. Never throws.
 */
export async function lingerForSource(channel: Channel): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const drain = (async () => {
    await channel.closeWrite();
    const sink = new Uint8Array(65536);
    while (await channel.read(sink) !== null);
  })().catch(() => {});
  await Promise.race([drain, new Promise<void>((r) => timer = setTimeout(r, REASON_LINGER_MS))]);
  clearTimeout(timer);
}

/** The source's record of the destination's reason, for one migration. */
export class PeerReason {
  #text: string | null = null;
  readonly #arrived = Promise.withResolvers<void>();

  /** `wake` runs when a reason arrives (the run's loop then stops sending). */
  constructor(private readonly wake: () => void) {}

  /** The destination's reason, or null. */
  get text(): string | null {
    return this.#text;
  }

  /** Records the destination's reason (the first one counts). */
  set(text: string): void {
    if (this.#text !== null) return;
    this.#text = text;
    this.#arrived.resolve();
    this.wake();
  }

  /** Throws {@link DestinationRefused} once the destination said why it stopped. */
  check(): void {
    if (this.#text !== null) throw new DestinationRefused(this.#text);
  }

  /**
   * Reads `channel`'s other direction when no return path is open: the destination sends
   * nothing there but its reason. Anything else, an error or the end stops it quietly.
   */
  async listen(channel: Channel): Promise<void> {
    const head = new Uint8Array(RP_HEADER_SIZE);
    try {
      if (!await readFull(channel, head) || !isRpReason(head)) return;
      const data = new Uint8Array((head[2] << 8) | head[3]);
      if (!await readFull(channel, data)) return;
      this.set(decodeRpReason(data));
    } catch {
      /* closed, or not a reason: nothing to report */
    }
  }

  /**
   * The error to report for a failed run: the destination's reason when it has one or it
   * arrives within `waitMs`, else `e` unchanged.
   */
  async explain(e: unknown, waitMs = REASON_WAIT_MS): Promise<unknown> {
    if (this.#text === null) {
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([
        this.#arrived.promise,
        new Promise<void>((r) => timer = setTimeout(r, waitMs)),
      ]);
      clearTimeout(timer);
    }
    return this.#text !== null ? new DestinationRefused(this.#text) : e;
  }
}

/**
 * A failed load tells the source: beyond QEMU its reason (on the return path, or the socket's
 * other direction; docs/wire-format.md, "The destination's reason") unless the source cancelled,
 * then SHUT 1 on the return path, and gives the source a moment to read it.
 */
export async function tellSource(
  e: unknown,
  message: string,
  rp: { send(bytes: Uint8Array): Promise<void> } | null,
  twoWay: boolean,
  channel: Channel,
): Promise<void> {
  const cancelled = e instanceof SourceCancelled;
  if (!cancelled) {
    if (rp) await rp.send(encodeRpReason(message));
    else if (twoWay) await sendReason(channel, message);
  }
  await rp?.send(encodeRpShut(1));
  if (twoWay && !cancelled) await lingerForSource(channel);
}
