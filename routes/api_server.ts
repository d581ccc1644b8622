/**
 * The shapes serve.ts and serve_tls.ts share: what the API serves, the PEM text of
 * `--api-tls`, a serving server, and how an address is written.
 *
 * @module
 */

/** `--api-tls` as PEM text. */
export interface ApiTls {
  cert: string;
  key: string;
  /** The CA client certificates must chain to; without it any client may connect. */
  clientCa?: string;
}

/** A serving API. */
export interface ApiServer {
  /** Resolves when the server has stopped. */
  finished: Promise<void>;
  /** Stops taking connections; resolves when open requests have ended. */
  shutdown(): Promise<void>;
}

/** Where it listens, once it does: `{addr, tls}` for the "listening" log line. */
export type OnListen = (where: { addr: string; tls: boolean }) => void;

/** What the API serves. */
export type Fetch = (request: Request) => Response | Promise<Response>;

/** `host:port`, an IPv6 host in brackets. */
export function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}
