/**
 * A socket (`Deno.Conn`) as a {@link Channel}, and a `Deno.Listener` as a
 * {@link ChannelListener}: adds close-twice safety and a clear error for use after close.
 * Closing cancels the socket's pending reads and writes at once (they reject), which is what
 * cancelling a migration stuck on a peer that stopped reading relies on.
 *
 * @module
 */

import type { Channel, ChannelListener } from "../../domain/ports.ts";
import type { DirectSocket } from "./direct_io.ts";
import { ChannelClosedError } from "./errors.ts";

/** A connected socket as a Channel. */
export class ConnChannel implements Channel {
  readonly #conn: Deno.Conn;
  readonly readCoalesceUs?: number;
  readonly #direct: DirectSocket | null;
  /** Deno reads / writes not settled yet: while there are any, a direct call would overtake. */
  #denoReads = 0;
  #denoWrites = 0;
  #closed = false;
  #writeClosed = false;

  /**
   * Wraps `conn`; the channel owns it from now on. See {@link Channel.readCoalesceUs}. With
   * `direct`, reads and writes go through it while the socket has data or room (direct_io.ts).
   */
  constructor(conn: Deno.Conn, readCoalesceUs?: number, direct: DirectSocket | null = null) {
    this.#conn = conn;
    if (readCoalesceUs !== undefined) this.readCoalesceUs = readCoalesceUs;
    this.#direct = direct;
  }

  /** True when reads and writes go through synchronous calls while they can (direct_io.ts). */
  get directIo(): boolean {
    return this.#direct !== null;
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
    if (this.#direct !== null && this.#denoReads === 0) {
      try {
        const got = this.#direct.recv(p);
        if (got !== "wait") return Promise.resolve(got === 0 ? null : got);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // Nothing to read now (or no direct socket): Deno's read waits for data.
    this.#denoReads++;
    const r = this.#conn.read(p);
    const settled = () => void this.#denoReads--;
    r.then(settled, settled);
    return r;
  }

  /** Writes some of `p`; resolves to the count. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("write on a closed channel"));
    if (this.#writeClosed) {
      return Promise.reject(new ChannelClosedError("write after closeWrite"));
    }
    if (this.#direct !== null && this.#denoWrites === 0) {
      try {
        const sent = this.#direct.send(p);
        if (sent !== "wait") return Promise.resolve(sent);
      } catch (e) {
        return Promise.reject(e);
      }
    }
    // The socket is full (or no direct sender): Deno's write waits for room.
    this.#denoWrites++;
    const w = this.#conn.write(p);
    const settled = () => void this.#denoWrites--;
    w.then(settled, settled);
    return w;
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
  readonly #direct: (conn: Deno.Conn) => DirectSocket | null;
  #closed = false;

  /**
   * @param listener the bound socket (owned from now on).
   * @param uri the bound address as a migration URI.
   * @param onAccept tunes each accepted connection (e.g. TCP no-delay).
   * @param onClose runs once after the socket is closed (e.g. removes a socket file).
   * @param readCoalesceUs each accepted channel's {@link Channel.readCoalesceUs}, from its peer's
   *   address (default: none).
   * @param direct each accepted channel's synchronous reads and writes (direct_io.ts; default:
   *   none).
   */
  constructor(
    listener: Deno.Listener,
    uri: string,
    onAccept: (conn: Deno.Conn) => void = () => {},
    onClose: () => void = () => {},
    readCoalesceUs: (peer: Deno.Addr) => number | undefined = () => undefined,
    direct: (conn: Deno.Conn) => DirectSocket | null = () => null,
  ) {
    this.#listener = listener;
    this.uri = uri;
    this.#onAccept = onAccept;
    this.#onClose = onClose;
    this.#readCoalesceUs = readCoalesceUs;
    this.#direct = direct;
  }

  /** Waits for the next peer; rejects once the listener is closed. */
  async accept(): Promise<Channel> {
    if (this.#closed) throw new ChannelClosedError("accept on a closed listener");
    const conn = await this.#listener.accept();
    this.#onAccept(conn);
    return new ConnChannel(conn, this.#readCoalesceUs(conn.remoteAddr), this.#direct(conn));
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
