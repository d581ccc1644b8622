/**
 * Migration URIs as `migrate` and `migrate-incoming` take them: `tcp:HOST:PORT`,
 * `unix:PATH`, `exec:CMD`, `file:PATH`, and `defer` (incoming only). `rdma:` and `fd:` are
 * recognised and refused with a clear message.
 *
 * @module
 */

/** A parsed migration URI. `host` is unbracketed (`::1`); `""` means every address (incoming). */
export type MigrationUri =
  | { kind: "tcp"; host: string; port: number }
  | { kind: "unix"; path: string }
  | { kind: "exec"; command: string }
  | { kind: "file"; path: string }
  | { kind: "defer" };

/** Which side the URI is for: `migrate` (outgoing) or `migrate-incoming` / `-incoming`. */
export type UriDirection = "outgoing" | "incoming";

/** A migration URI that cannot be used; `message` says why, naming the URI. */
export class UriError extends Error {
  /** @param message the user-facing text. */
  constructor(message: string) {
    super(message);
    this.name = "UriError";
  }
}

/** Longest unix socket path: sun_path holds 108 bytes including the terminating NUL. */
export const UNIX_PATH_MAX = 107;

/** Parses `uri` for `direction`, throwing {@link UriError} with a message naming the problem. */
export function parseMigrationUri(uri: string, direction: UriDirection): MigrationUri {
  if (uri === "defer") {
    if (direction === "incoming") return { kind: "defer" };
    throw new UriError(unknownProtocol(uri, direction));
  }
  const colon = uri.indexOf(":");
  const scheme = colon < 0 ? "" : uri.slice(0, colon);
  const rest = uri.slice(colon + 1);
  switch (scheme) {
    case "tcp":
      return parseTcp(uri, rest, direction);
    case "unix":
      return { kind: "unix", path: parseUnixPath(uri, rest) };
    case "exec":
      if (rest.trim() === "") throw new UriError(`missing command in '${uri}'`);
      return { kind: "exec", command: rest };
    case "file":
      if (rest === "") throw new UriError(`missing path in '${uri}'`);
      return { kind: "file", path: rest };
    case "rdma":
      throw new UriError("RDMA migration is not supported by this build");
    case "fd":
      throw new UriError("fd: migration is not supported (no monitor file descriptors in Ferry)");
    default:
      throw new UriError(unknownProtocol(uri, direction));
  }
}

/** The URI text for `u`; `parseMigrationUri(formatMigrationUri(u), dir)` gives `u` back. */
export function formatMigrationUri(u: MigrationUri): string {
  switch (u.kind) {
    case "tcp":
      return `tcp:${formatHostPort(u.host, u.port)}`;
    case "unix":
      return `unix:${u.path}`;
    case "exec":
      return `exec:${u.command}`;
    case "file":
      return `file:${u.path}`;
    case "defer":
      return "defer";
  }
}

/** `host:port`, with an IPv6 host in brackets (`[::1]:4444`). */
export function formatHostPort(host: string, port: number): string {
  return host.includes(":") ? `[${host}]:${port}` : `${host}:${port}`;
}

/** The URI forms each direction takes, as the error for an unknown scheme lists them. */
const FORMS: Record<UriDirection, string> = {
  outgoing: "tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH",
  incoming: "tcp:HOST:PORT, unix:PATH, exec:CMD, file:PATH, defer",
};

/**
 * The seed's text for a URI whose scheme is unknown (`migrate`: QERR_INVALID_PARAMETER_VALUE;
 * `-incoming`: "unknown migration protocol"), then the forms that work.
 */
export function unknownProtocol(uri: string, direction: UriDirection): string {
  const seed = direction === "outgoing"
    ? "Parameter 'uri' expects a valid migration protocol"
    : `unknown migration protocol: ${uri}`;
  return `${seed} (one of ${FORMS[direction]})`;
}

function parseTcp(uri: string, rest: string, direction: UriDirection): MigrationUri {
  let host: string;
  let portText: string;
  if (rest.startsWith("[")) {
    const close = rest.indexOf("]");
    if (close < 0) throw new UriError(`invalid IPv6 address in '${uri}' (missing ']')`);
    host = rest.slice(1, close);
    if (!/^[0-9A-Fa-f:.]+(%[\w.-]+)?$/.test(host) || !host.includes(":")) {
      throw new UriError(`invalid IPv6 address in '${uri}'`);
    }
    const after = rest.slice(close + 1);
    if (after === "") throw new UriError(`missing port in '${uri}'`);
    if (!after.startsWith(":")) throw new UriError(`expected ':PORT' after ']' in '${uri}'`);
    portText = after.slice(1);
  } else {
    const sep = rest.lastIndexOf(":");
    if (sep < 0) throw new UriError(`missing port in '${uri}' (expected tcp:HOST:PORT)`);
    host = rest.slice(0, sep);
    portText = rest.slice(sep + 1);
    if (host.includes(":")) {
      throw new UriError(`IPv6 address must be in brackets in '${uri}' (e.g. tcp:[::1]:4444)`);
    }
    if (/[\s/[\]@]/.test(host)) throw new UriError(`invalid host in '${uri}'`);
  }
  if (portText === "") throw new UriError(`missing port in '${uri}'`);
  if (!/^\d{1,5}$/.test(portText) || Number(portText) > 65535) {
    throw new UriError(`invalid port in '${uri}'`);
  }
  const port = Number(portText);
  if (direction === "outgoing") {
    if (host === "") throw new UriError(`missing host in '${uri}'`);
    if (port === 0) throw new UriError(`invalid port in '${uri}' (port 0 is for incoming only)`);
  }
  return { kind: "tcp", host, port };
}

function parseUnixPath(uri: string, path: string): string {
  if (path === "") throw new UriError(`missing path in '${uri}'`);
  if (new TextEncoder().encode(path).length > UNIX_PATH_MAX) {
    throw new UriError(`unix socket path too long in '${uri}' (at most ${UNIX_PATH_MAX} bytes)`);
  }
  return path;
}
