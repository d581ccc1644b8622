/**
 * TLS channels over TCP or a unix socket (`tls-creds` set), both sides on `node:tls`: it can
 * require and verify a client certificate (`Deno.listenTls` cannot), take the name to check
 * apart from the address to dial (`tls-hostname`), and run over a unix socket.
 *
 * After the TLS handshake both sides exchange a one-byte verdict before the channel is
 * handed out (a Ferry-internal step, invisible to callers):
 *
 * 1. the server judges the client's certificate itself (so it can say why it refused) and
 *    sends `0x01` (accepted) or `0x00` followed by the reason and end of stream;
 * 2. the client, having checked the server's certificate and name, answers `0x01`.
 *
 * With TLS 1.3 a client finishes its handshake before the server has judged its certificate,
 * and a client's name check runs after the handshake, so without these bytes each side would
 * only learn of the other's refusal from a later read or write. With them, a refused client's
 * connect fails with `TLS handshake failed: certificate rejected by the server: <reason>`,
 * and the server's accept fails when the client refused the server.
 *
 * A peer that fails the handshake (plain TCP, an untrusted certificate, silence past the
 * handshake timeout) makes that one `accept()` reject with a TlsHandshakeError; the listener
 * goes on accepting later peers. Nothing a refused peer sent is ever handed out.
 *
 * @module
 */

import { isIP } from "node:net";
import * as tls from "node:tls";
import type { ChannelListener } from "../../domain/ports.ts";
import { type TlsCreds, TlsCredsError, type TlsEndpoint } from "./tls_creds.ts";
import { nodeErrorText, TlsSocketChannel } from "./tls_socket.ts";
import {
  DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  isCertificateCode,
  MAX_REASON_BYTES,
  TlsHandshakeError,
  VERDICT_ACCEPTED,
  VERDICT_REJECTED,
} from "./tls_handshake.ts";
import { TlsListener } from "./tls_listener.ts";
import { formatHostPort } from "./uri.ts";
import { removeQuietly, removeStaleSocket } from "./unix.ts";

export { DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS, TlsHandshakeError } from "./tls_handshake.ts";

/** TLS settings for a channel: the credentials, and for a client the name to check. */
export interface TlsChannelOptions {
  /** Credentials with a client endpoint (connecting) or a server endpoint (listening). */
  creds: TlsCreds;
  /** Client only: the name the server's certificate must carry (`tls-hostname`). */
  hostname?: string;
  /** Handshake deadline in milliseconds (default DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS). */
  handshakeTimeoutMs?: number;
}

/** Throws TlsCredsError (QEMU's text) unless `creds` are for `endpoint`. */
export function requireEndpoint(creds: TlsCreds, endpoint: TlsEndpoint): void {
  if (creds.endpoint !== endpoint) {
    throw new TlsCredsError(`Expecting TLS credentials with a ${endpoint} endpoint`);
  }
}

/**
 * Connects to `host:port` and completes a TLS handshake with client `creds`, checking the
 * server's certificate against `hostname` (default: `host`) when verify-peer is on.
 * Errors: TlsCredsError for unusable creds; "Connection refused" etc.; TlsHandshakeError.
 */
export function connectTlsChannel(
  host: string,
  port: number,
  creds: TlsCreds,
  hostname?: string,
  opts: { handshakeTimeoutMs?: number } = {},
): Promise<TlsSocketChannel> {
  return connectTls({ host, port }, host, { creds, hostname, ...opts });
}

/**
 * Like connectTlsChannel over the unix socket at `path`. There is no host to default to, so
 * with verify-peer on `hostname` is required (TlsCredsError "No hostname available for TLS").
 */
export function connectTlsUnixChannel(
  path: string,
  creds: TlsCreds,
  hostname?: string,
  opts: { handshakeTimeoutMs?: number } = {},
): Promise<TlsSocketChannel> {
  return connectTls({ path }, undefined, { creds, hostname, ...opts });
}

/**
 * Listens on `host:port` (`host` "" = every IPv4 address, port 0 = a free one) with server
 * `creds`; with verify-peer on, only clients with a certificate from the CA are accepted.
 */
export async function listenTlsChannel(
  host: string,
  port: number,
  creds: TlsCreds,
  opts: { handshakeTimeoutMs?: number } = {},
): Promise<ChannelListener> {
  requireEndpoint(creds, "server");
  const server = createServer(creds, opts.handshakeTimeoutMs);
  await startListening(server, (done) => server.listen(port, host === "" ? "0.0.0.0" : host, done));
  const addr = server.address();
  const bound = typeof addr === "object" && addr !== null
    ? formatHostPort(addr.address, addr.port)
    : `${host}:${port}`;
  return new TlsListener(server, `tcp:${bound}`, listenerOptions(creds, opts));
}

/** Like listenTlsChannel on the unix socket `path` (a stale socket file there is replaced). */
export async function listenTlsUnixChannel(
  path: string,
  creds: TlsCreds,
  opts: { handshakeTimeoutMs?: number } = {},
): Promise<ChannelListener> {
  requireEndpoint(creds, "server");
  removeStaleSocket(path);
  const server = createServer(creds, opts.handshakeTimeoutMs);
  await startListening(server, (done) => server.listen(path, done));
  return new TlsListener(
    server,
    `unix:${path}`,
    listenerOptions(creds, opts),
    () => removeQuietly(path),
  );
}

type Target = { host: string; port: number } | { path: string };

async function connectTls(
  target: Target,
  defaultName: string | undefined,
  opts: TlsChannelOptions,
): Promise<TlsSocketChannel> {
  const { creds } = opts;
  requireEndpoint(creds, "client");
  const name = opts.hostname ? opts.hostname : defaultName;
  if (creds.verifyPeer && !name) throw new TlsCredsError("No hostname available for TLS");
  const timeoutMs = opts.handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS;
  const options: tls.ConnectionOptions & { allowHalfOpen: boolean } = {
    ...target,
    ca: creds.caCert,
    cert: creds.cert,
    key: creds.key,
    servername: name !== undefined && isIP(name) === 0 ? name : undefined,
    rejectUnauthorized: creds.verifyPeer,
    checkServerIdentity: (_host, cert) =>
      creds.verifyPeer ? tls.checkServerIdentity(name ?? "", cert) : undefined,
    allowHalfOpen: true, // keep writing after the server half-closes
  };
  const socket = tls.connect(options);
  const channel = new TlsSocketChannel(socket);
  const deadline = Promise.withResolvers<never>();
  const timer = setTimeout(
    () => deadline.reject(new TlsHandshakeError(`no answer within ${timeoutMs} ms`)),
    timeoutMs,
  );
  try {
    await Promise.race([secureConnect(socket), deadline.promise]);
    socket.setNoDelay(true); // small frames (the return path) must not wait for Nagle
    await Promise.race([readVerdict(channel), deadline.promise]);
    return channel;
  } catch (err) {
    channel.close();
    throw clientError(err);
  } finally {
    clearTimeout(timer);
  }
}

/** Resolves once the client handshake is done; rejects on an error or early close. */
function secureConnect(socket: tls.TLSSocket): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      socket.off("secureConnect", done);
      socket.off("error", done);
      socket.off("close", closed);
      if (err) reject(err);
      else resolve();
    };
    const closed = () => done(new TlsHandshakeError("the server closed the connection"));
    socket.on("secureConnect", done);
    socket.on("error", done);
    socket.on("close", closed);
  });
}

/** Reads the server's verdict; throws TlsHandshakeError if it refused us. */
async function readVerdict(channel: TlsSocketChannel): Promise<void> {
  const first = new Uint8Array(1);
  if (await channel.read(first) === null) {
    throw new TlsHandshakeError("the server closed the connection before accepting it");
  }
  if (first[0] === VERDICT_ACCEPTED) {
    await channel.write(Uint8Array.of(VERDICT_ACCEPTED)); // our own verdict on the server
    return;
  }
  if (first[0] !== VERDICT_REJECTED) {
    throw new TlsHandshakeError("unexpected reply from the server (not a Ferry TLS listener?)");
  }
  const reason = new Uint8Array(MAX_REASON_BYTES);
  let n = 0;
  for (let r; n < MAX_REASON_BYTES && (r = await channel.read(reason.subarray(n))) !== null;) {
    n += r;
  }
  const text = new TextDecoder().decode(reason.subarray(0, n));
  throw new TlsHandshakeError(`certificate rejected by the server: ${text}`);
}

/** Maps a client-side failure to TlsHandshakeError, keeping plain connect errors plain. */
function clientError(err: unknown): Error {
  if (err instanceof TlsHandshakeError || err instanceof TlsCredsError) return err;
  const e = err as { syscall?: string; code?: string };
  if (e?.syscall === "connect" || e?.syscall === "getaddrinfo") {
    return new Error(nodeErrorText(err), { cause: err });
  }
  if (typeof e?.code === "string" && isCertificateCode(e.code)) {
    return new TlsHandshakeError(`certificate rejected: ${nodeErrorText(err)}`, err);
  }
  return new TlsHandshakeError(nodeErrorText(err), err);
}

function listenerOptions(creds: TlsCreds, opts: { handshakeTimeoutMs?: number }) {
  return {
    verifyPeer: creds.verifyPeer,
    handshakeTimeoutMs: opts.handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  };
}

function createServer(creds: TlsCreds, handshakeTimeoutMs?: number): tls.Server {
  return tls.createServer({
    ca: creds.caCert,
    cert: creds.cert,
    key: creds.key,
    requestCert: creds.verifyPeer,
    // Verified by TlsListener after the handshake, so that it can tell the client why.
    rejectUnauthorized: false,
    allowHalfOpen: true,
    handshakeTimeout: handshakeTimeoutMs ?? DEFAULT_TLS_HANDSHAKE_TIMEOUT_MS,
  });
}

/** Calls `listen` and waits for it; a bind failure rejects with strerror-like text. */
function startListening(server: tls.Server, listen: (done: () => void) => void): Promise<void> {
  return new Promise((resolve, reject) => {
    const failed = (err: Error) => reject(new Error(nodeErrorText(err), { cause: err }));
    server.once("error", failed);
    listen(() => {
      server.off("error", failed);
      resolve();
    });
  });
}
