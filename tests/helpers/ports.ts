/**
 * Test helper: loopback ports. `freePort` finds one nothing listens on; `listening` tells from
 * the kernel's socket table whether something listens on one, without connecting (a probe
 * connection would be taken for a migration stream by the agent listening there).
 *
 * @module
 */

/** A loopback TCP port nothing listens on now (bound, then closed). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * A loopback TCP port that refuses connections for the whole run: 1 (tcpmux), which nothing
 * on these machines serves and no test binds. A port found free and closed again
 * (`freePort`) may be taken by another test's agent meanwhile, and a "refused" migration
 * would then go to that agent.
 */
export const REFUSING_PORT = 1;

/** TCP_LISTEN in /proc/net/tcp's `st` column. */
const TCP_LISTEN = "0A";

/**
 * Whether a TCP socket listens on `port` (any address) in this network namespace, or in that
 * of process `pid`: read from /proc/net/tcp and tcp6 (Linux).
 */
export function listening(port: number, pid?: number): boolean {
  const hex = port.toString(16).toUpperCase().padStart(4, "0");
  const net = pid === undefined ? "/proc/net" : `/proc/${pid}/net`;
  for (const table of [`${net}/tcp`, `${net}/tcp6`]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue; // no IPv6, or not Linux
    }
    for (const line of text.split("\n").slice(1)) {
      const [, local, , state] = line.trim().split(/\s+/);
      if (state === TCP_LISTEN && local?.endsWith(`:${hex}`)) return true;
    }
  }
  return false;
}
