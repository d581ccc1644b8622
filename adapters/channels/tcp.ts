/**
 * TCP transport: `tcp:HOST:PORT`. No-delay is set on every connection (the stream is
 * written in large pieces; small trailing frames must not wait for Nagle); a connection made
 * to a loopback peer gets a 1 MiB send buffer (send_buffer.ts); every connection reads and
 * writes with synchronous calls while its socket has data or room (direct_io.ts).
 *
 * @module
 */

import type { ChannelListener } from "../../domain/ports.ts";
import { ConnChannel, ConnListener } from "./conn_channel.ts";
import { DirectSocket } from "./direct_io.ts";
import { capLoopbackSendBuffer, isLoopbackHost } from "./send_buffer.ts";
import { formatHostPort } from "./uri.ts";

/**
 * A reader of a large payload pauses this long after a short read (Channel.readCoalesceUs),
 * unless its peer is on loopback. Measured on a 1 GiB random guest over loopback with the
 * kernel's send buffer (8 alternating pairs, 2026-12): the two agents' CPU 570 → 480 ms (fewer
 * wake-ups of either side), migration time 294 → 268 ms; other runs showed the time equal
 * within noise, never worse. Since loopback senders cap their send buffer at 1 MiB
 * (send_buffer.ts), a 200 µs pause there lets the buffer fill and the sender wait: 2.7–3.0
 * GB/s against 4.5–5.1 without pauses (2026-12-07), so loopback readers do not pause.
 */
export const TCP_READ_COALESCE_US = 200;

/** The read coalescing of a TCP connection to `peer` (none on loopback; see above). */
export function tcpReadCoalesceUs(peer: Deno.Addr): number | undefined {
  return peer.transport === "tcp" && isLoopbackHost((peer as Deno.NetAddr).hostname)
    ? undefined
    : TCP_READ_COALESCE_US;
}

/** Connects to `host:port` over TCP. Errors are Deno's (see connectChannel for wrapping). */
export async function connectTcp(host: string, port: number): Promise<ConnChannel> {
  const conn = await Deno.connect({ hostname: host, port, transport: "tcp" });
  conn.setNoDelay(true);
  // One search of the process's descriptors for the socket serves both.
  const direct = DirectSocket.of(conn);
  capLoopbackSendBuffer(conn, direct?.fd);
  return new ConnChannel(conn, tcpReadCoalesceUs(conn.remoteAddr), direct);
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
  return new ConnListener(
    listener,
    `tcp:${formatHostPort(addr.hostname, addr.port)}`,
    setNoDelay,
    undefined,
    tcpReadCoalesceUs,
    DirectSocket.of,
  );
}

/** Accepted connections of a TCP listener are TcpConns. */
function setNoDelay(conn: Deno.Conn): void {
  (conn as Deno.TcpConn).setNoDelay(true);
}
