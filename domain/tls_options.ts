/**
 * The TLS options a migration channel gets from the tls-creds and tls-hostname
 * parameters: the named credentials (of the right endpoint), on tcp: and unix: only.
 *
 * @module
 */
import { parseMigrationUri } from "../adapters/channels/uri.ts";
import type { TlsCredsRegistry } from "../adapters/channels/tls_creds.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import { tlsUnsupported } from "../adapters/channels/connect.ts";
import { DomainError } from "./errors.ts";
import type { Parameters } from "./options.ts";

/**
 * The TLS options for a channel to (`client`) or from (`server`) `uri`; undefined for a
 * plain channel (no tls-creds). Throws an `invalid-value` DomainError naming the problem.
 */
export function tlsOptionsFor(
  registry: TlsCredsRegistry,
  params: Parameters,
  uri: string,
  endpoint: "client" | "server",
): TlsChannelOptions | undefined {
  const id = params["tls-creds"];
  if (!id) return undefined;
  try {
    const creds = registry.get(id);
    if (creds.endpoint !== endpoint) {
      throw new Error(`Expecting TLS credentials with a ${endpoint} endpoint`);
    }
    const u = parseMigrationUri(uri, endpoint === "client" ? "outgoing" : "incoming");
    if (u.kind !== "tcp" && u.kind !== "unix") throw new Error(tlsUnsupported(u));
    return { creds, hostname: params["tls-hostname"] || undefined };
  } catch (e) {
    throw new DomainError("invalid-value", (e as Error).message);
  }
}
