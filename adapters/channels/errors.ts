/**
 * Errors shared by the channel adapters, and a helper that turns Deno's OS errors into
 * QEMU-like text ("Connection refused" rather than "Connection refused (os error 111)").
 *
 * @module
 */

/** An operation on a channel that was already closed (or closed while the operation waited). */
export class ChannelClosedError extends Error {
  /** @param message what was attempted, e.g. "read on a closed channel". */
  constructor(message = "Channel is closed") {
    super(message);
    this.name = "ChannelClosedError";
  }
}

/** A credentials object that cannot be parsed, loaded or found; `message` says why. */
export class TlsCredsError extends Error {
  /** @param message user-facing text. */
  constructor(message: string) {
    super(message);
    this.name = "TlsCredsError";
  }
}

/** The peer closed its read side, so nothing written here can arrive (EPIPE). */
export class BrokenPipeError extends Error {
  /** @param message defaults to the strerror text of EPIPE. */
  constructor(message = "Broken pipe") {
    super(message);
    this.name = "BrokenPipeError";
  }
}

/**
 * The connection failed underneath a channel (reset, closed by the peer's side of a TLS
 * session, a socket error); the message is the system's text.
 */
export class ConnectionLostError extends Error {
  /** @param message strerror-like text, e.g. "Connection reset by peer". */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "ConnectionLostError";
  }
}

/**
 * The message of `err` without Deno's trailing " (os error N)" and what follows it
 * (": open '/x'"), e.g. "No such file or directory"; any value becomes a string.
 */
export function osErrorText(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/ \(os error \d+\)(: .*)?$/s, "");
}
