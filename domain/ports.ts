/**
 * Ports: the shapes the domain needs from the outside world. Adapters implement them;
 * the domain never imports an adapter's internals.
 *
 * @module
 */

/**
 * One duplex byte stream: a TCP or unix socket, a child process's stdio, a file, or an
 * in-memory pair in tests. Adapters move bytes only; they never parse frames.
 * `Deno.Conn` satisfies this interface as it is.
 */
export interface Channel {
  /** Reads up to `p.length` bytes into `p`; resolves to the count, or `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null>;
  /** Writes some of `p` (possibly fewer bytes than asked); resolves to the count written. */
  write(p: Uint8Array): Promise<number>;
  /** Half-closes the write side (the peer reads end of stream); reading goes on. */
  closeWrite(): Promise<void>;
  /** Closes both directions at once; pending reads and writes reject. Safe to call twice. */
  close(): void;
  /**
   * How long (µs) a reader in the middle of a large payload may pause after a short read, so
   * the transport hands over a bigger batch next time: fewer wake-ups of both ends, like a
   * NIC's interrupt coalescing. Only TCP to a peer off this host sets it: with a local peer
   * (loopback TCP, unix sockets) the sender waits while the reader pauses.
   */
  readonly readCoalesceUs?: number;
}

/** A listening endpoint that yields channels. */
export interface ChannelListener {
  /** Waits for the next peer; rejects once the listener is closed. */
  accept(): Promise<Channel>;
  /** Stops listening and removes any socket file it created. Safe to call twice. */
  close(): void;
  /** The address actually bound, as a migration URI (e.g. `tcp:127.0.0.1:40123`). */
  readonly uri: string;
}
