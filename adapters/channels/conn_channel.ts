/**
 * A socket (`Deno.Conn`) as a {@link Channel}, and a `Deno.Listener` as a
 * {@link ChannelListener}: adds close-twice safety and a clear error for use after close.
 * Closing cancels the socket's pending reads and writes at once (they reject), which is what
 * cancelling a migration stuck on a peer that stopped reading relies on.
 *
 * @module
 */

import type { Channel, ChannelListener } from "../../domain/ports.ts";
import { ChannelClosedError } from "./errors.ts";

/** A connected socket as a Channel. */
export class ConnChannel implements Channel {
  readonly #conn: Deno.Conn;
  readonly readCoalesceUs?: number;
  #closed = false;
  #writeClosed = false;

  /** Wraps `conn`; the channel owns it from now on. See {@link Channel.readCoalesceUs}. */
  constructor(conn: Deno.Conn, readCoalesceUs?: number) {
    this.#conn = conn;
    if (readCoalesceUs !== undefined) this.readCoalesceUs = readCoalesceUs;
  }

  /** The socket's local address (as Deno reports it). */
  get localAddr(): Deno.Addr {
    return this.#conn.localAddr;
  }

  /** The socket's peer address (as Deno reports it). */
  get remoteAddr(): Deno.Addr {
    return this.#conn.remoteAddr;
  }

  /** Reads up to `p.length` bytes; `null` at end of stream. */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("read on a closed channel"));
    return this.#conn.read(p);
  }

  /** Writes some of `p`; resolves to the count. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("write on a closed channel"));
    if (this.#writeClosed) {
      return Promise.reject(new ChannelClosedError("write after closeWrite"));
    }
    return this.#conn.write(p);
  }

  /** Half-closes the socket (shutdown(SHUT_WR)); a second call does nothing. */
  async closeWrite(): Promise<void> {
    if (this.#closed) throw new ChannelClosedError("closeWrite on a closed channel");
    if (this.#writeClosed) return;
    this.#writeClosed = true;
    await this.#conn.closeWrite();
  }

  /** Closes the socket; pending reads and writes reject. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed underneath (e.g. by the runtime); nothing left to release.
    }
  }
}

/** A listening socket as a ChannelListener. */
export class ConnListener implements ChannelListener {
  readonly uri: string;
  readonly #listener: Deno.Listener;
  readonly #onAccept: (conn: Deno.Conn) => void;
  readonly #onClose: () => void;
  readonly #readCoalesceUs: (peer: Deno.Addr) => number | undefined;
  #closed = false;

  /**
   * @param listener the bound socket (owned from now on).
   * @param uri the bound address as a migration URI.
   * @param onAccept tunes each accepted connection (e.g. TCP no-delay).
   * @param onClose runs once after the socket is closed (e.g. removes a socket file).
   * @param readCoalesceUs each accepted channel's {@link Channel.readCoalesceUs}, from its peer's
   *   address (default: none).
   */
  constructor(
    listener: Deno.Listener,
    uri: string,
    onAccept: (conn: Deno.Conn) => void = () => {},
    onClose: () => void = () => {},
    readCoalesceUs: (peer: Deno.Addr) => number | undefined = () => undefined,
  ) {
    this.#listener = listener;
    this.uri = uri;
    this.#onAccept = onAccept;
    this.#onClose = onClose;
    this.#readCoalesceUs = readCoalesceUs;
  }

  /** Waits for the next peer; rejects once the listener is closed. */
  async accept(): Promise<Channel> {
    if (this.#closed) throw new ChannelClosedError("accept on a closed listener");
    const conn = await this.#listener.accept();
    this.#onAccept(conn);
    return new ConnChannel(conn, this.#readCoalesceUs(conn.remoteAddr));
  }

  /** Stops listening (pending accepts reject). Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#listener.close();
    } catch {
      // Already closed underneath.
    }
    this.#onClose();
  }
}
