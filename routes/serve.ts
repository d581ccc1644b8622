/**
 * Serving the API: plain HTTP on TCP or a unix socket through `Deno.serve`, or HTTPS with
 * `--api-tls CERT,KEY[,CLIENT_CA]` (the same PEM files as migration TLS) through
 * `node:https`, which, unlike `Deno.serve` and `Deno.listenTls`, can require and verify
 * client certificates: with a CLIENT_CA the TLS handshake of a client without a
 * certificate that CA signed fails, so it never reaches the app (serve_tls.ts, imported only
 * with `--api-tls`: node:https and its polyfills cost every other agent's start).
 *
 * @module
 */
import type { ApiListen } from "./api_access.ts";
import { type ApiServer, type ApiTls, type Fetch, hostPort, type OnListen } from "./api_server.ts";

export type { ApiServer, ApiTls, OnListen };

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

/** Serves `fetch` on `listen`, over TLS when `tls` is given. */
export async function serveApi(
  listen: ApiListen,
  tls: ApiTls | undefined,
  fetch: Fetch,
  onListen: OnListen,
): Promise<ApiServer> {
  if (tls !== undefined) {
    const { serveTls } = await import("./serve_tls.ts");
    return await serveTls(listen, tls, fetch, onListen);
  }
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
