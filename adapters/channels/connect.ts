/**
 * Opens the outgoing stream for a migration URI (`migrate uri=...`).
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";
import { osErrorText } from "./errors.ts";
import { ExecChannel } from "./exec.ts";
import { openFileChannel } from "./file.ts";
import { connectTcp } from "./tcp.ts";
import { connectUnix } from "./unix.ts";
import { formatHostPort, type MigrationUri, parseMigrationUri, UriError } from "./uri.ts";

/** Opening a stream failed; `message` is QEMU-like, `cause` is the underlying error. */
export class ChannelConnectError extends Error {
  /** @param message user-facing text; @param cause the runtime's error. */
  constructor(message: string, cause: unknown) {
    super(message, { cause });
    this.name = "ChannelConnectError";
  }
}

/**
 * Connects to `uri` (parsed as outgoing if a string). Throws UriError for a bad URI and
 * ChannelConnectError e.g. "Failed to connect to 127.0.0.1:4444: Connection refused".
 */
export async function connectChannel(uri: MigrationUri | string): Promise<Channel> {
  const u = typeof uri === "string" ? parseMigrationUri(uri, "outgoing") : uri;
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
      throw new UriError("Parameter 'uri' expects a valid migration protocol");
  }
}

/** Runs `open`, rethrowing its failure as `${what}: <os error text>`. */
export async function wrap<T>(what: string, open: () => Promise<T>): Promise<T> {
  try {
    return await open();
  } catch (err) {
    throw new ChannelConnectError(`${what}: ${osErrorText(err)}`, err);
  }
}
