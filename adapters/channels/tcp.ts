/**
 * TCP transport: `tcp:HOST:PORT`. No-delay is set on every connection (the stream is
 * written in large pieces; small trailing frames must not wait for Nagle).
 *
 * @module
 */

import type { ChannelListener } from "../../domain/ports.ts";
import { ConnChannel, ConnListener } from "./conn_channel.ts";
import { formatHostPort } from "./uri.ts";

/** Connects to `host:port` over TCP. Errors are Deno's (see connectChannel for wrapping). */
export async function connectTcp(host: string, port: number): Promise<ConnChannel> {
  const conn = await Deno.connect({ hostname: host, port, transport: "tcp" });
  conn.setNoDelay(true);
  return new ConnChannel(conn);
}

/**
 * Listens on `host:port` (`host` "" = every IPv4 address; port 0 = a free port). The
 * listener's `uri` carries the port actually bound.
 */
export function listenTcp(host: string, port: number): ChannelListener {
  const listener = Deno.listen({
    hostname: host === "" ? "0.0.0.0" : host,
    port,
    transport: "tcp",
  });
  const addr = listener.addr as Deno.NetAddr;
  return new ConnListener(listener, `tcp:${formatHostPort(addr.hostname, addr.port)}`, setNoDelay);
}

/** Accepted connections of a TCP listener are TcpConns. */
function setNoDelay(conn: Deno.Conn): void {
  (conn as Deno.TcpConn).setNoDelay(true);
}
