/**
 * Serving the API: plain HTTP on TCP or a unix socket through `Deno.serve`, or HTTPS with
 * `--api-tls CERT,KEY[,CLIENT_CA]` (the same PEM files as migration TLS) through
 * `node:https`, which, unlike `Deno.serve` and `Deno.listenTls`, can require and verify
 * client certificates: with a CLIENT_CA the TLS handshake of a client without a
 * certificate that CA signed fails, so it never reaches the app.
 *
 * @module
 */
import * as https from "node:https";
import { getRequestListener } from "@hono/node-server";
import type { ApiListen } from "./api_access.ts";

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

type Fetch = (request: Request) => Response | Promise<Response>;

/** Reads the files `--api-tls CERT,KEY[,CLIENT_CA]` names; throws an Error naming the flag. */
export async function readApiTls(spec: string): Promise<ApiTls> {
  const parts = spec.split(",");
  if (parts.length < 2 || parts.length > 3 || parts.some((p) => p === "")) {
    throw new Error(`--api-tls expects CERT,KEY[,CLIENT_CA] (PEM files), got '${spec}'`);
  }
  const read = async (path: string, what: string) => {
    try {
      return await Deno.readTextFile(path);
    } catch (e) {
      throw new Error(`--api-tls: cannot read the ${what} '${path}': ${(e as Error).message}`);
    }
  };
  const [cert, key, clientCa] = parts;
  return {
    cert: await read(cert, "certificate"),
    key: await read(key, "key"),
    clientCa: clientCa === undefined ? undefined : await read(clientCa, "client CA"),
  };
}

function hostPort(hostname: string, port: number): string {
  return hostname.includes(":") ? `[${hostname}]:${port}` : `${hostname}:${port}`;
}

/** Serves `fetch` on `listen`, over TLS when `tls` is given. */
export async function serveApi(
  listen: ApiListen,
  tls: ApiTls | undefined,
  fetch: Fetch,
  onListen: OnListen,
): Promise<ApiServer> {
  if (tls !== undefined) return await serveTls(listen, tls, fetch, onListen);
  let server: Deno.HttpServer;
  if (listen.kind === "unix") {
    try {
      Deno.removeSync(listen.path);
    } catch { /* no stale socket */ }
    server = Deno.serve({
      path: listen.path,
      onListen: () => onListen({ addr: `unix:${listen.path}`, tls: false }),
    }, fetch);
  } else {
    server = Deno.serve({
      hostname: listen.hostname,
      port: listen.port,
      onListen: (a) => onListen({ addr: hostPort(a.hostname, a.port), tls: false }),
    }, fetch);
  }
  return { finished: server.finished, shutdown: () => server.shutdown() };
}

async function serveTls(
  listen: ApiListen,
  tls: ApiTls,
  fetch: Fetch,
  onListen: OnListen,
): Promise<ApiServer> {
  const mutual = tls.clientCa !== undefined;
  let server: https.Server;
  try {
    server = https.createServer({
      cert: tls.cert,
      key: tls.key,
      ca: tls.clientCa,
      requestCert: mutual,
      rejectUnauthorized: mutual,
    }, getRequestListener(fetch));
  } catch (e) {
    throw new Error(`--api-tls: ${(e as Error).message}`);
  }
  const finished = Promise.withResolvers<void>();
  server.on("close", () => finished.resolve());
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    const ready = () => {
      server.off("error", reject);
      resolve();
    };
    if (listen.kind === "unix") {
      try {
        Deno.removeSync(listen.path);
      } catch { /* no stale socket */ }
      server.listen(listen.path, ready);
    } else {
      server.listen(listen.port, listen.hostname, ready);
    }
  });
  const bound = server.address();
  onListen({
    addr: typeof bound === "object" && bound !== null
      ? hostPort(bound.address, bound.port)
      : `unix:${bound ?? (listen as { path: string }).path}`,
    tls: true,
  });
  return {
    finished: finished.promise,
    shutdown: () => {
      server.close();
      server.closeIdleConnections();
      return finished.promise;
    },
  };
}
