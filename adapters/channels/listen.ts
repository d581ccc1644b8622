/**
 * Opens the incoming side for a migration URI (`migrate-incoming uri=...`): a listening
 * socket for tcp/unix; for exec/file a one-shot listener whose first accept() yields the
 * command's output (spawned then) or the opened file, and whose later accept() calls wait
 * until the listener is closed and then reject.
 *
 * @module
 */

import type { Channel, ChannelListener } from "../../domain/ports.ts";
import { tlsUnsupported, wrap } from "./connect.ts";
import { ChannelClosedError } from "./errors.ts";
import { ExecChannel } from "./exec.ts";
import { openFileChannel } from "./file.ts";
import { listenTcp } from "./tcp.ts";
// TLS (node:tls, node:crypto) loads only when a listener uses it, as in connect.ts: the
// destination's data-path Worker starts ~23 ms of CPU sooner without it.
import type { TlsChannelOptions } from "./tls.ts";
import { listenUnix } from "./unix.ts";
import {
  formatHostPort,
  formatMigrationUri,
  type MigrationUri,
  parseMigrationUri,
  UriError,
} from "./uri.ts";

/** Options for listenChannel. */
export interface ListenChannelOptions {
  /** Make every accepted channel TLS (tcp: and unix: only) with these server credentials. */
  tls?: Omit<TlsChannelOptions, "hostname">;
}

/**
 * Starts listening on `uri` (parsed as incoming if a string). Throws UriError for a bad URI
 * (and for `defer`, which names no address) and ChannelConnectError when binding or opening
 * fails, e.g. "Failed to listen on 127.0.0.1:4444: Address already in use". With
 * `opts.tls` accepted channels are TLS (see tls.ts: a peer that fails the handshake makes
 * its accept() reject with a TlsHandshakeError); exec:/file: URIs are refused (UriError).
 */
export async function listenChannel(
  uri: MigrationUri | string,
  opts: ListenChannelOptions = {},
): Promise<ChannelListener> {
  const u = typeof uri === "string" ? parseMigrationUri(uri, "incoming") : uri;
  if (opts.tls !== undefined && u.kind !== "defer") {
    const { creds, handshakeTimeoutMs } = opts.tls;
    if (u.kind !== "tcp" && u.kind !== "unix") throw new UriError(tlsUnsupported(u));
    const { listenTlsChannel, listenTlsUnixChannel } = await import("./tls.ts");
    switch (u.kind) {
      case "tcp":
        return await wrap(
          `Failed to listen on ${formatHostPort(u.host, u.port)}`,
          () => listenTlsChannel(u.host, u.port, creds, { handshakeTimeoutMs }),
        );
      case "unix":
        return await wrap(
          `Failed to listen on ${u.path}`,
          () => listenTlsUnixChannel(u.path, creds, { handshakeTimeoutMs }),
        );
    }
  }
  switch (u.kind) {
    case "tcp":
      return await wrap(
        `Failed to listen on ${formatHostPort(u.host, u.port)}`,
        () => Promise.resolve(listenTcp(u.host, u.port)),
      );
    case "unix":
      return await wrap(`Failed to listen on ${u.path}`, () => Promise.resolve(listenUnix(u.path)));
    case "exec":
      return new OneShotListener(
        formatMigrationUri(u),
        () =>
          wrap(
            `Failed to start '${u.command}'`,
            () => Promise.resolve(new ExecChannel(u.command, "incoming")),
          ),
      );
    case "file": {
      const channel = await wrap(
        `Failed to open ${u.path}`,
        () => openFileChannel(u.path, "incoming"),
      );
      return new OneShotListener(formatMigrationUri(u), () => Promise.resolve(channel), channel);
    }
    case "defer":
      throw new UriError("'defer' names no address: give the URI with migrate-incoming");
  }
}

/** Yields exactly one channel; later accepts wait for close() and then reject. */
class OneShotListener implements ChannelListener {
  readonly uri: string;
  readonly #open: () => Promise<Channel>;
  /** A channel opened eagerly and not yet handed out: close() must close it. */
  #unclaimed: Channel | null;
  #used = false;
  #closed = false;
  readonly #closedSignal = Promise.withResolvers<never>();

  constructor(uri: string, open: () => Promise<Channel>, opened: Channel | null = null) {
    this.uri = uri;
    this.#open = open;
    this.#unclaimed = opened;
    this.#closedSignal.promise.catch(() => {});
  }

  async accept(): Promise<Channel> {
    if (this.#closed) throw new ChannelClosedError("accept on a closed listener");
    if (this.#used) return await this.#closedSignal.promise;
    this.#used = true;
    this.#unclaimed = null;
    return await this.#open();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#unclaimed?.close();
    this.#unclaimed = null;
    this.#closedSignal.reject(new ChannelClosedError("listener closed"));
  }
}
