/**
 * A `node:tls` socket as a {@link Channel}. Deno's `node:tls` is used because it can require
 * and verify a client certificate (`Deno.listenTls` cannot) and can run over a unix socket.
 *
 * - read: incoming `data` chunks are queued and copied into the caller's buffer; past
 *   `highWaterMark` queued bytes the socket is paused (TCP backpressure reaches the sender),
 *   and resumed once the queue drains below half of it. Deno 2.9's TLSWrap does not stop
 *   reading the socket underneath on `pause()` (it keeps decrypting into an unbounded buffer,
 *   and resuming after a large backlog can stall the stream), so pausing also stops and
 *   restarts reads on the native handle below it when the runtime exposes one.
 * - write: resolves with the whole length once the socket's write callback has run, i.e. the
 *   bytes were encrypted and handed on, so the caller may reuse its buffer at once (views of
 *   a SharedArrayBuffer are fine). One write in flight already reaches ~1 GB/s.
 * - closeWrite: `end()` (close_notify, then FIN); reading goes on (half-open sockets).
 * - close: `destroy()`; pending reads and writes reject with ChannelClosedError.
 *
 * @module
 */

import type { TLSSocket } from "node:tls";
import type { Channel } from "../../domain/ports.ts";
import { ChannelClosedError, ConnectionLostError } from "./errors.ts";

/** Default bytes queued on the read side before the socket is paused. */
export const TLS_READ_HIGH_WATER = 4 * 1024 * 1024;

/** strerror texts for the errno codes node reports on sockets. */
const ERRNO_TEXT: Record<string, string> = {
  ECONNREFUSED: "Connection refused",
  ECONNRESET: "Connection reset by peer",
  EPIPE: "Broken pipe",
  ENOENT: "No such file or directory",
  EACCES: "Permission denied",
  EADDRINUSE: "Address already in use",
  EADDRNOTAVAIL: "Cannot assign requested address",
  ETIMEDOUT: "Connection timed out",
  EHOSTUNREACH: "No route to host",
  ENETUNREACH: "Network is unreachable",
  ENOTFOUND: "Name or service not known",
};

/** A node error as QEMU-like text: errno codes become strerror text, others keep theirs. */
export function nodeErrorText(err: unknown): string {
  const code = (err as { code?: unknown })?.code;
  if (typeof code === "string" && code in ERRNO_TEXT) return ERRNO_TEXT[code];
  return err instanceof Error ? err.message : String(err);
}

/** A socket error as a ConnectionLostError with QEMU-like text (cause: the original). */
function socketError(err: Error): Error {
  return new ConnectionLostError(nodeErrorText(err), { cause: err });
}

/** The handle a read-stop must reach, as Deno 2.9 lays it out (see the module doc). */
interface NativeHandle {
  readStart(): unknown;
  readStop(): unknown;
}

/** The socket's native TCP/pipe handle under its TLS handle, if this runtime has one. */
function nativeHandle(socket: TLSSocket): NativeHandle | null {
  const tlsHandle = (socket as unknown as { _handle?: { _nativeTcpHandle?: unknown } })._handle;
  const native = tlsHandle?._nativeTcpHandle as Partial<NativeHandle> | null | undefined;
  return typeof native?.readStop === "function" && typeof native.readStart === "function"
    ? native as NativeHandle
    : null;
}

/** A connected TLS socket as a Channel. */
export class TlsSocketChannel implements Channel {
  /** The wrapped socket (for handshake details such as the peer certificate). */
  readonly socket: TLSSocket;
  readonly #highWater: number;
  readonly #queue: Uint8Array[] = [];
  #queued = 0;
  #paused = false;
  #ended = false;
  #error: Error | null = null;
  #closed = false;
  #writeClosed = false;
  readonly #waiters: (() => void)[] = [];
  readonly #pendingWrites = new Set<(err: Error) => void>();

  /** Wraps `socket` (owned from now on); attach before any data can arrive. */
  constructor(socket: TLSSocket, highWaterMark = TLS_READ_HIGH_WATER) {
    this.socket = socket;
    this.#highWater = highWaterMark;
    socket.on("data", (chunk: Uint8Array) => {
      this.#queue.push(chunk);
      this.#queued += chunk.length;
      if (this.#queued >= this.#highWater && !this.#paused) {
        this.#paused = true;
        socket.pause();
        nativeHandle(socket)?.readStop();
      }
      this.#wake();
    });
    socket.on("end", () => {
      this.#ended = true;
      this.#wake();
    });
    socket.on("error", (err: Error) => this.#fail(socketError(err)));
    socket.on("close", () => this.#fail(new ConnectionLostError("Connection closed")));
  }

  /** Reads up to `p.length` bytes; `null` at end of stream. */
  async read(p: Uint8Array): Promise<number | null> {
    for (;;) {
      if (this.#closed) throw new ChannelClosedError("read on a closed channel");
      if (this.#queued > 0) return this.#take(p);
      if (this.#ended) return null;
      if (this.#error !== null) throw this.#error;
      if (p.length === 0) return 0;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  /** Writes all of `p`; resolves to `p.length` once the socket has taken it. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("write on a closed channel"));
    if (this.#writeClosed) {
      return Promise.reject(new ChannelClosedError("write after closeWrite"));
    }
    if (this.#error !== null) return Promise.reject(this.#error);
    if (p.length === 0) return Promise.resolve(0);
    return new Promise((resolve, reject) => {
      const settle = (err?: Error | null) => {
        if (!this.#pendingWrites.delete(settle)) return;
        if (err) reject(this.#closed ? new ChannelClosedError("channel closed during write") : err);
        else resolve(p.length);
      };
      this.#pendingWrites.add(settle);
      this.socket.write(p, settle);
    });
  }

  /** Ends the write side (TLS close_notify, then FIN); resolves once it is flushed. */
  closeWrite(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new ChannelClosedError("closeWrite on a closed channel"));
    }
    if (this.#writeClosed) return Promise.resolve();
    this.#writeClosed = true;
    if (this.#error !== null) return Promise.reject(this.#error);
    return new Promise((resolve, reject) => {
      const settle = (err?: Error | null) => {
        if (!this.#pendingWrites.delete(settle)) return;
        if (err) reject(err);
        else resolve();
      };
      this.#pendingWrites.add(settle);
      this.socket.end(() => settle());
    });
  }

  /** Destroys the socket; pending reads and writes reject. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.socket.destroy();
    this.#rejectWrites(new ChannelClosedError("channel closed during write"));
    this.#queue.length = 0;
    this.#queued = 0;
    this.#wake();
  }

  /** Copies queued bytes into `p`, resuming the socket once the queue is low. */
  #take(p: Uint8Array): number {
    let n = 0;
    while (n < p.length && this.#queue.length > 0) {
      const chunk = this.#queue[0];
      const k = Math.min(p.length - n, chunk.length);
      p.set(k === chunk.length ? chunk : chunk.subarray(0, k), n);
      n += k;
      if (k === chunk.length) this.#queue.shift();
      else this.#queue[0] = chunk.subarray(k);
    }
    this.#queued -= n;
    if (this.#paused && this.#queued < this.#highWater / 2) {
      this.#paused = false;
      nativeHandle(this.socket)?.readStart();
      this.socket.resume();
    }
    return n;
  }

  #fail(err: Error): void {
    this.#error ??= err;
    this.#rejectWrites(this.#error);
    this.#wake();
  }

  #rejectWrites(err: Error): void {
    for (const settle of [...this.#pendingWrites]) settle(err);
  }

  #wake(): void {
    for (const wake of this.#waiters.splice(0)) wake();
  }
}
