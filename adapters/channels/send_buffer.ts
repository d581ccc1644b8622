/**
 * A sender's send buffer, sized (SO_SNDBUF) through libc: capped for a loopback TCP sender,
 * raised for a unix-socket sender. Deno sets no socket options but no-delay and keep-alive,
 * and does not expose a connection's file descriptor, so the descriptor is found by asking each
 * of the process's sockets for its two addresses (getsockname / getpeername) and taking the one
 * that matches the connection's. Both ends of an open TCP connection name it alone, so the
 * match is exact, and nothing is written to any other descriptor.
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
 * A unix-socket sender's send buffer is raised instead, to 4 MiB (2 MiB asked). A unix stream
 * socket's send buffer is the whole pipe: what the sender wrote stays charged to it until the
 * receiver reads it, so the kernel's default (net.core.wmem_default, 208 KiB) makes the two
 * ends take turns every 208 KiB. Measured 2026-12-07 on the same host, 1 GiB between two
 * touched buffers in two processes, three alternating rounds:
 * - a raw Deno pair: 7.8–8.2 GB/s with 4 MiB, each end ~130 ms of CPU; with the default 1.5,
 *   6.5 and 4.8 GB/s (the slowest spent 700 ms of CPU sending); with 1 MiB 4.0, 7.8, 1.4;
 * - Ferry's 1 GiB random guest over multifd (2 channels, unix), every unix socket's default
 *   at 4 MiB (net.core.wmem_default): median 6.8 GB/s (5.5–7.4, 6 repetitions) against 5.9
 *   (5.2–6.1); one channel: median 6.2 against 5.8;
 * - then with this code instead of the sysctl: median 6.8 GB/s (5.4–7.1, 9 repetitions); one
 *   channel 6.2 (4.3–6.8).
 * A unix connection's descriptor cannot be told from another's to the same path by its
 * addresses (the connecting end is unnamed), so every socket of this process connected to the
 * path gets the buffer: all of them are a migration's channels to that peer. The kernel caps
 * what is asked at net.core.wmem_max (often 208 KiB, so 416 KiB in use; 4 MiB here).
 *
 * Linux only, and only with FFI allowed; elsewhere the buffer stays the kernel's.
 *
 * @module
 */
import { socketLibc } from "./socket_libc.ts";

/** What a loopback sender's SO_SNDBUF is set to (the kernel doubles it: 1 MiB in use). */
export const LOOPBACK_SEND_BUFFER = 512 * 1024;

/** What a unix-socket sender's SO_SNDBUF is set to (the kernel doubles it: 4 MiB in use). */
export const UNIX_SEND_BUFFER = 2 * 1024 * 1024;

const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const AF_UNIX = 1;
const AF_INET = 2;
const AF_INET6 = 10;
/** Big enough for a sockaddr_in6 (28 bytes). */
const SOCKADDR_BYTES = 32;
/** A sockaddr_un: family (2 bytes) and a 108-byte path. */
const SOCKADDR_UN_BYTES = 110;
/** Descriptors tried when /proc/self/fd cannot be listed. */
const SCAN_FDS = 4096;

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
  const c = socketLibc();
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
  const fd = tcpConnFd(conn);
  return fd === null ? null : fdSendBuffer(fd);
}

function fdSendBuffer(fd: number): number | null {
  const c = socketLibc();
  if (!c) return null;
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

function setSendBuffer(fd: number, bytes: number): boolean {
  const c = socketLibc();
  const v = new Int32Array([bytes]);
  return c !== null &&
    c.symbols.setsockopt(fd, SOL_SOCKET, SO_SNDBUF, new Uint8Array(v.buffer), 4) === 0;
}

/**
 * Caps the send buffer of `conn` at {@link LOOPBACK_SEND_BUFFER} when its peer is on loopback
 * (see the module doc); returns whether it did. `known`: its descriptor, when already found.
 */
export function capLoopbackSendBuffer(conn: TcpEnds, known?: number): boolean {
  if (conn.remoteAddr.transport !== "tcp") return false;
  if (!isLoopbackHost((conn.remoteAddr as Deno.NetAddr).hostname)) return false;
  const fd = known ?? tcpConnFd(conn);
  return fd !== null && setSendBuffer(fd, LOOPBACK_SEND_BUFFER);
}

/** The descriptors of this process's sockets connected to the unix socket at `path`. */
export function unixPeerFds(path: string): number[] {
  const c = socketLibc();
  if (!c || path === "") return [];
  const want = new TextEncoder().encode(path);
  const raw = new Uint8Array(SOCKADDR_UN_BYTES);
  const len = new Uint32Array(1);
  const lenBytes = new Uint8Array(len.buffer);
  const found: number[] = [];
  for (const fd of openFds()) {
    len[0] = SOCKADDR_UN_BYTES;
    if (c.symbols.getpeername(fd, raw, lenBytes) !== 0) continue;
    if ((raw[0] | (raw[1] << 8)) !== AF_UNIX) continue;
    // sun_path: up to the reported length, NUL-terminated when shorter.
    const end = Math.min(len[0], SOCKADDR_UN_BYTES);
    let n = 0;
    while (2 + n < end && raw[2 + n] !== 0) n++;
    if (n === want.length && want.every((b, i) => raw[2 + i] === b)) found.push(fd);
  }
  return found;
}

/** The send buffers, in bytes, of this process's sockets connected to `path`. */
export function unixSendBufferBytes(path: string): (number | null)[] {
  return unixPeerFds(path).map(fdSendBuffer);
}

/**
 * Raises the send buffer of every socket of this process connected to the unix socket at
 * `path` to {@link UNIX_SEND_BUFFER} (see the module doc); returns how many it set.
 */
export function raiseUnixSendBuffer(path: string): number {
  return unixPeerFds(path).filter((fd) => setSendBuffer(fd, UNIX_SEND_BUFFER)).length;
}
