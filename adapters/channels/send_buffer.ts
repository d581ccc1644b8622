/**
 * A loopback TCP sender's send buffer, capped (SO_SNDBUF) through libc: Deno sets no socket
 * options but no-delay and keep-alive, and does not expose a connection's file descriptor, so
 * the descriptor is found by asking each of the process's sockets for its two addresses
 * (getsockname / getpeername) and taking the one that matches the connection's. Both ends of an
 * open connection name it alone, so the match is exact, and nothing is written to any other
 * descriptor.
 *
 * Why: Linux grows a TCP send buffer up to 4 MiB (net.ipv4.tcp_wmem). Over loopback what the
 * sender has written but the receiver has not read yet then outgrows the CPUs' caches, and
 * both copies (into the socket, out of it) go to memory. Capped at 1 MiB (512 KiB asked: the
 * kernel doubles it), measured 2026-12-07 on this project's kind of host (kernel 6.18, 2 vCPUs,
 * 1 MiB L2 each), moving 1 GiB between two touched buffers in two processes:
 * - a raw Deno pair: 5.4–7.0 GB/s against 4.15–4.6 (four alternating pairs);
 * - Ferry, a 1 GiB random guest: 4.5–5.1 GB/s against 3.6–4.5 (five alternating pairs),
 *   with the destination's read coalescing off (tcp.ts; with it on: 2.7–3.0);
 * - 256 KiB, 2 MiB and 4 MiB caps gained less or nothing.
 * Only loopback peers get it: over a real link a 1 MiB buffer would cap the rate at
 * 1 MiB per round trip.
 *
 * Linux only, and only with FFI allowed; elsewhere the buffer stays the kernel's.
 *
 * @module
 */

/** What a loopback sender's SO_SNDBUF is set to (the kernel doubles it: 1 MiB in use). */
export const LOOPBACK_SEND_BUFFER = 512 * 1024;

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const AF_INET = 2;
const AF_INET6 = 10;
/** Big enough for a sockaddr_in6 (28 bytes). */
const SOCKADDR_BYTES = 32;
/** Descriptors tried when /proc/self/fd cannot be listed. */
const SCAN_FDS = 4096;

type Sockets = {
  symbols: {
    getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
    getpeername(fd: number, addr: Uint8Array, len: Uint8Array): number;
    setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
    getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint8Array): number;
  };
};
let lib: Sockets | null | undefined;

function sockets(): Sockets | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (Deno.build.os !== "linux") return lib;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
    }) as unknown as Sockets;
  } catch {
    lib = null;
  }
  return lib;
}

/** True for 127.0.0.0/8, ::1 and ::ffff:127.x.x.x. */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, "").toLowerCase();
  return /^127\.\d+\.\d+\.\d+$/.test(h) || h === "::1" || /^::ffff:127\.\d+\.\d+\.\d+$/.test(h);
}

/** A socket address's family, port and (IPv4) address bytes, as the kernel wrote them. */
function decodeSockaddr(b: Uint8Array): { family: number; port: number; v4: string | null } {
  const family = b[0] | (b[1] << 8); // sa_family_t: host order (little-endian on Linux hosts)
  const port = (b[2] << 8) | b[3]; // network order
  return { family, port, v4: family === AF_INET ? `${b[4]}.${b[5]}.${b[6]}.${b[7]}` : null };
}

/**
 * True when a socket address the kernel reported is `addr`: family, port and (IPv4) address; an
 * IPv6 one by family and port (local and peer ports together name one connection here).
 */
function sameAddr(raw: Uint8Array, addr: Deno.NetAddr): boolean {
  const a = decodeSockaddr(raw);
  if (a.port !== addr.port) return false;
  if (a.family === AF_INET) return a.v4 === addr.hostname;
  return a.family === AF_INET6 && addr.hostname.includes(":");
}

/** The process's open descriptors (from /proc/self/fd, else 3 … SCAN_FDS - 1). */
function openFds(): number[] {
  try {
    const fds: number[] = [];
    for (const e of Deno.readDirSync("/proc/self/fd")) {
      const fd = Number(e.name);
      if (Number.isInteger(fd) && fd > 2) fds.push(fd);
    }
    return fds;
  } catch {
    return Array.from({ length: SCAN_FDS - 3 }, (_, i) => i + 3);
  }
}

/** A TCP connection's two addresses (a Deno.Conn, or a channel made from one). */
export interface TcpEnds {
  readonly localAddr: Deno.Addr;
  readonly remoteAddr: Deno.Addr;
}

/** The descriptor of the TCP connection `conn`, or null when it cannot be found. */
export function tcpConnFd(conn: TcpEnds): number | null {
  const c = sockets();
  if (!c || conn.localAddr.transport !== "tcp") return null;
  const local = conn.localAddr as Deno.NetAddr;
  const remote = conn.remoteAddr as Deno.NetAddr;
  const raw = new Uint8Array(SOCKADDR_BYTES);
  const len = new Uint32Array(1);
  const lenBytes = new Uint8Array(len.buffer);
  const ask = (fn: typeof c.symbols.getsockname, fd: number) => {
    len[0] = SOCKADDR_BYTES;
    return fn(fd, raw, lenBytes) === 0;
  };
  for (const fd of openFds()) {
    if (!ask(c.symbols.getsockname, fd) || !sameAddr(raw, local)) continue;
    if (ask(c.symbols.getpeername, fd) && sameAddr(raw, remote)) return fd;
  }
  return null;
}

/** The send buffer of `conn` in bytes as the kernel reports it (null: cannot be read). */
export function sendBufferBytes(conn: TcpEnds): number | null {
  const c = sockets();
  const fd = tcpConnFd(conn);
  if (!c || fd === null) return null;
  const v = new Int32Array(1);
  const len = new Uint32Array([4]);
  const ok = c.symbols.getsockopt(
    fd,
    SOL_SOCKET,
    SO_SNDBUF,
    new Uint8Array(v.buffer),
    new Uint8Array(len.buffer),
  );
  return ok === 0 ? v[0] : null;
}

/**
 * Caps the send buffer of `conn` at {@link LOOPBACK_SEND_BUFFER} when its peer is on loopback
 * (see the module doc); returns whether it did.
 */
export function capLoopbackSendBuffer(conn: TcpEnds): boolean {
  if (conn.remoteAddr.transport !== "tcp") return false;
  if (!isLoopbackHost((conn.remoteAddr as Deno.NetAddr).hostname)) return false;
  const c = sockets();
  const fd = tcpConnFd(conn);
  if (!c || fd === null) return false;
  const v = new Int32Array([LOOPBACK_SEND_BUFFER]);
  return c.symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, new Uint8Array(v.buffer), 4) === 0;
}
