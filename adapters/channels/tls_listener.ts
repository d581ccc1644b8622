/**
 * A listening `node:tls` server as a {@link ChannelListener}. Each peer's outcome is queued
 * in the order its handshake ends: a verified channel, or a TlsHandshakeError that the
 * matching `accept()` rejects with (the listener goes on accepting later peers).
 *
 * With verify-peer on, the client's certificate is judged here after the handshake: a
 * missing or unverifiable one is refused with the verdict byte and the reason (see tls.ts),
 * and its connection is closed without a byte of its data being read. An accepted client
 * must answer with its own verdict byte (it judged our certificate and name), so a client
 * that refused us also fails its accept() instead of yielding a dead channel.
 *
 * @module
 */

import type * as net from "node:net";
import type * as tls from "node:tls";
import type { Channel, ChannelListener } from "../../domain/ports.ts";
import { ChannelClosedError } from "./errors.ts";
import {
  certificateErrorText,
  MAX_REASON_BYTES,
  TlsHandshakeError,
  VERDICT_ACCEPTED,
  VERDICT_REJECTED,
} from "./tls_handshake.ts";
import { nodeErrorText, TlsSocketChannel } from "./tls_socket.ts";

/** How long a refused peer gets to read the reason before its socket is destroyed. */
const REFUSAL_LINGER_MS = 1000;

type Outcome = { channel: TlsSocketChannel } | { error: Error };

/** A TLS server as a ChannelListener. */
export class TlsListener implements ChannelListener {
  readonly uri: string;
  readonly #server: tls.Server;
  readonly #verifyPeer: boolean;
  readonly #handshakeTimeoutMs: number;
  readonly #onClose: () => void;
  readonly #outcomes: Outcome[] = [];
  readonly #waiters: PromiseWithResolvers<Outcome>[] = [];
  /** Sockets of peers being judged or refused, destroyed on close(). */
  readonly #inFlight = new Set<tls.TLSSocket>();
  /**
   * Raw sockets still in their TLS handshake, destroyed on close() (else they would live
   * until the handshake timeout). A secured TLS socket names its raw socket as `_parent` in
   * Deno 2.9 (and Node); if that link is ever missing, tracking stops rather than risk
   * destroying a socket that was handed out.
   */
  readonly #handshaking = new Set<net.Socket>();
  #tracking = true;
  #closed = false;

  /**
   * @param server a listening server (owned from now on), created with rejectUnauthorized
   *   off and requestCert = verifyPeer.
   * @param uri the bound address as a migration URI.
   * @param opts.verifyPeer refuse clients without a certificate the CA vouches for.
   * @param opts.handshakeTimeoutMs how long an accepted client has to send its verdict.
   * @param onClose runs once after the server is closed (e.g. removes a socket file).
   */
  constructor(
    server: tls.Server,
    uri: string,
    opts: { verifyPeer: boolean; handshakeTimeoutMs: number },
    onClose: () => void = () => {},
  ) {
    this.#server = server;
    this.uri = uri;
    this.#verifyPeer = opts.verifyPeer;
    this.#handshakeTimeoutMs = opts.handshakeTimeoutMs;
    this.#onClose = onClose;
    server.on("connection", (raw: net.Socket) => {
      if (!this.#tracking) return;
      this.#handshaking.add(raw);
      raw.once("close", () => this.#handshaking.delete(raw));
    });
    server.on("secureConnection", (socket: tls.TLSSocket) => {
      const raw = (socket as unknown as { _parent?: net.Socket })._parent;
      if (raw === undefined || !this.#handshaking.delete(raw)) {
        this.#tracking = false;
        this.#handshaking.clear();
      }
      this.#judge(socket);
    });
    server.on("tlsClientError", (err: Error, socket?: tls.TLSSocket) => {
      socket?.destroy();
      this.#push({ error: new TlsHandshakeError(handshakeErrorText(err), err) });
    });
    server.on("error", (err: Error) => this.#push({ error: new Error(nodeErrorText(err)) }));
  }

  /** Waits for the next peer: its channel, or a TlsHandshakeError if it was refused. */
  async accept(): Promise<Channel> {
    if (this.#closed) throw new ChannelClosedError("accept on a closed listener");
    const next = this.#outcomes.shift();
    const outcome = next ?? await this.#wait();
    if ("error" in outcome) throw outcome.error;
    return outcome.channel;
  }

  /** Stops listening; pending accepts reject, peers not yet accepted are closed. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#server.close();
    for (const socket of [...this.#inFlight, ...this.#handshaking]) socket.destroy();
    this.#inFlight.clear();
    this.#handshaking.clear();
    for (const outcome of this.#outcomes.splice(0)) {
      if ("channel" in outcome) outcome.channel.close();
    }
    for (const waiter of this.#waiters.splice(0)) {
      waiter.reject(new ChannelClosedError("listener closed"));
    }
    this.#onClose();
  }

  #wait(): Promise<Outcome> {
    const waiter = Promise.withResolvers<Outcome>();
    this.#waiters.push(waiter);
    return waiter.promise;
  }

  #push(outcome: Outcome): void {
    if (this.#closed) {
      if ("channel" in outcome) outcome.channel.close();
      return;
    }
    const waiter = this.#waiters.shift();
    if (waiter !== undefined) waiter.resolve(outcome);
    else this.#outcomes.push(outcome);
  }

  /** Accepts or refuses a peer whose handshake has completed. */
  #judge(socket: tls.TLSSocket): void {
    this.#inFlight.add(socket);
    socket.once("close", () => this.#inFlight.delete(socket));
    const refusal = this.#verifyPeer ? refusalReason(socket) : null;
    if (refusal === null) {
      socket.setNoDelay(true); // small frames (the return path) must not wait for Nagle
      this.#welcome(new TlsSocketChannel(socket)).then((outcome) => this.#push(outcome));
      return;
    }
    const reason = new TextEncoder().encode(refusal).subarray(0, MAX_REASON_BYTES);
    const message = new Uint8Array(1 + reason.length);
    message[0] = VERDICT_REJECTED;
    message.set(reason, 1);
    const timer = setTimeout(() => socket.destroy(), REFUSAL_LINGER_MS);
    socket.on("error", () => {}); // the peer may reset first; the refusal stands
    socket.once("close", () => clearTimeout(timer));
    socket.end(message, () => socket.destroy());
    this.#push({ error: new TlsHandshakeError(`certificate rejected: ${refusal}`) });
  }

  /** Sends our verdict and waits for the client's; resolves to the outcome either way. */
  async #welcome(channel: TlsSocketChannel): Promise<Outcome> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new TlsHandshakeError("the client did not confirm the session in time")),
        this.#handshakeTimeoutMs,
      );
    });
    try {
      await Promise.race([channel.write(Uint8Array.of(VERDICT_ACCEPTED)), deadline]);
      const answer = new Uint8Array(1);
      const n = await Promise.race([channel.read(answer), deadline]);
      if (n === null) {
        throw new TlsHandshakeError(
          "the client closed the connection (did it reject our certificate?)",
        );
      }
      if (answer[0] !== VERDICT_ACCEPTED) {
        throw new TlsHandshakeError("unexpected reply from the client (not a Ferry TLS client?)");
      }
      this.#inFlight.delete(channel.socket);
      return { channel };
    } catch (err) {
      channel.close();
      if (err instanceof TlsHandshakeError) return { error: err };
      return { error: new TlsHandshakeError(nodeErrorText(err), err) };
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Why the client's certificate is refused, or null if it verified. */
function refusalReason(socket: tls.TLSSocket): string | null {
  const peer = socket.getPeerCertificate();
  if (peer === null || peer === undefined || Object.keys(peer).length === 0) {
    return "the client sent no certificate";
  }
  if (socket.authorized) return null;
  return certificateErrorText(socket.authorizationError);
}

/** Text for a handshake that failed before completing, with a hint for plain-TCP peers. */
function handshakeErrorText(err: Error): string {
  const text = nodeErrorText(err);
  if (/timeout/i.test(text)) return "timed out (is the peer using TLS?)";
  if (/corrupt message|wrong version number|InvalidContentType/i.test(text)) {
    return `the peer did not start a TLS session (plain TCP?): ${text}`;
  }
  return text;
}
