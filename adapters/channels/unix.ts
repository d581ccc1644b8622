/**
 * Unix-domain socket transport: `unix:PATH`. Listening removes a stale socket file left at
 * PATH first (a regular file there is refused, not deleted) and removes the socket file on
 * close.
 *
 * @module
 */

import type { ChannelListener } from "../../domain/ports.ts";
import { ConnChannel, ConnListener } from "./conn_channel.ts";
import { raiseUnixSendBuffer } from "./send_buffer.ts";

/**
 * Connects to the socket at `path`, with a 4 MiB send buffer (send_buffer.ts). Errors are
 * Deno's (see connectChannel for wrapping).
 */
export async function connectUnix(path: string): Promise<ConnChannel> {
  const conn = await Deno.connect({ transport: "unix", path });
  raiseUnixSendBuffer(path);
  return new ConnChannel(conn);
}

/** Listens on `path`, replacing a stale socket file; the listener's `uri` is `unix:PATH`. */
export function listenUnix(path: string): ChannelListener {
  removeStaleSocket(path);
  const listener = Deno.listen({ transport: "unix", path });
  return new ConnListener(listener, `unix:${path}`, undefined, () => removeQuietly(path));
}

/** Removes a socket file left at `path` (nothing there is fine; anything else is refused). */
export function removeStaleSocket(path: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw err;
  }
  if (!info.isSocket) {
    throw new Deno.errors.AlreadyExists(`'${path}' exists and is not a socket`);
  }
  Deno.removeSync(path);
}

/** Removes the socket file at `path` if it is still there (after a listener closed). */
export function removeQuietly(path: string): void {
  try {
    if (Deno.lstatSync(path).isSocket) Deno.removeSync(path);
  } catch {
    // Gone already (Deno may remove it when the listener closes).
  }
}
