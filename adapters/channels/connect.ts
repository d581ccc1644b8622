/**
 * Opens the outgoing stream for a migration URI (`migrate uri=...`).
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";
import { osErrorText, TlsCredsError } from "./errors.ts";
import { ExecChannel } from "./exec.ts";
import { openFileChannel } from "./file.ts";
import { connectTcp } from "./tcp.ts";
// TLS (node:tls, node:crypto) loads only when a migration uses it: a Worker that imports it
// up front takes ~15 ms longer to start, and every migration starts new Workers.
import type { TlsChannelOptions } from "./tls.ts";
import { connectUnix } from "./unix.ts";
import {
  formatHostPort,
  type MigrationUri,
  parseMigrationUri,
  unknownProtocol,
  UriError,
} from "./uri.ts";

/** Opening a stream failed; `message` is QEMU-like, `cause` is the underlying error. */
export class ChannelConnectError extends Error {
  /** @param message user-facing text; @param cause the runtime's error. */
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "ChannelConnectError";
  }
}

/** Options for connectChannel. */
export interface ConnectChannelOptions {
  /** Make the channel TLS (tcp: and unix: only) with these client credentials. */
  tls?: TlsChannelOptions;
}

/**
 * Connects to `uri` (parsed as outgoing if a string). Throws UriError for a bad URI and
 * ChannelConnectError e.g. "Failed to connect to 127.0.0.1:4444: Connection refused".
 * With `opts.tls` the channel is TLS: unusable credentials throw TlsCredsError as they are,
 * and a failed handshake gives e.g. "Failed to connect to 127.0.0.1:4444: TLS handshake
 * failed: certificate rejected: ..."; exec:/file: URIs are refused with a UriError.
 */
export async function connectChannel(
  uri: MigrationUri | string,
  opts: ConnectChannelOptions = {},
): Promise<Channel> {
  const u = typeof uri === "string" ? parseMigrationUri(uri, "outgoing") : uri;
  if (opts.tls !== undefined) return await connectTls(u, opts.tls);
  switch (u.kind) {
    case "tcp":
      return await wrap(
        `Failed to connect to ${formatHostPort(u.host, u.port)}`,
        () => connectTcp(u.host, u.port),
      );
    case "unix":
      return await wrap(`Failed to connect to ${u.path}`, () => connectUnix(u.path));
    case "exec":
      return await wrap(
        `Failed to start '${u.command}'`,
        () => Promise.resolve(new ExecChannel(u.command, "outgoing")),
      );
    case "file":
      return await wrap(`Failed to open ${u.path}`, () => openFileChannel(u.path, "outgoing"));
    case "defer":
      throw new UriError(unknownProtocol("defer", "outgoing"));
  }
}

async function connectTls(u: MigrationUri, tls: TlsChannelOptions): Promise<Channel> {
  const { creds, hostname, handshakeTimeoutMs } = tls;
  if (u.kind !== "tcp" && u.kind !== "unix") throw new UriError(tlsUnsupported(u));
  const { connectTlsChannel, connectTlsUnixChannel } = await import("./tls.ts");
  switch (u.kind) {
    case "tcp":
      return await wrap(
        `Failed to connect to ${formatHostPort(u.host, u.port)}`,
        () => connectTlsChannel(u.host, u.port, creds, hostname, { handshakeTimeoutMs }),
      );
    case "unix":
      return await wrap(
        `Failed to connect to ${u.path}`,
        () => connectTlsUnixChannel(u.path, creds, hostname, { handshakeTimeoutMs }),
      );
  }
}

/** The refusal for TLS on a URI other than tcp: or unix:. */
export function tlsUnsupported(u: MigrationUri): string {
  return `TLS is only supported on tcp: and unix: channels, not ${u.kind}:`;
}

/**
 * Runs `open`, rethrowing its failure as `${what}: <os error text>`; a TlsCredsError (the
 * credentials, not the address, are wrong) passes through unchanged.
 */
export async function wrap<T>(what: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    if (err instanceof TlsCredsError) throw err;
    throw new ChannelConnectError(`${what}: ${osErrorText(err)}`, err);
  }
}
