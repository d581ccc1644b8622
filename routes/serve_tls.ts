/**
 * Serving the API over HTTPS (`--api-tls`) through `node:https`, which can require and verify
 * client certificates (serve.ts imports this module only when asked to).
 *
 * @module
 */
import * as https from "node:https";
import { getRequestListener } from "@hono/node-server";
import type { ApiListen } from "./api_access.ts";
import { type ApiServer, type ApiTls, type Fetch, hostPort, type OnListen } from "./api_server.ts";

/** Serves `fetch` on `listen` over TLS; with a client CA, only its clients get through. */
export async function serveTls(
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
