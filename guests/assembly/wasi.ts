// WASI preview1, as a toolchain declares it: the imports the sample guests use, and a
// buffered writer for stdout/stderr. AssemblyScript, built by guests/build.ts.

@external("wasi_snapshot_preview1", "fd_read")
export declare function fd_read(fd: u32, iovs: usize, iovsLen: u32, nread: usize): u16;

@external("wasi_snapshot_preview1", "fd_write")
export declare function fd_write(fd: u32, iovs: usize, iovsLen: u32, nwritten: usize): u16;

@external("wasi_snapshot_preview1", "clock_time_get")
export declare function clock_time_get(id: u32, precision: u64, time: usize): u16;

@external("wasi_snapshot_preview1", "random_get")
export declare function random_get(buf: usize, len: usize): u16;

@external("wasi_snapshot_preview1", "args_sizes_get")
export declare function args_sizes_get(argc: usize, argvBufSize: usize): u16;

@external("wasi_snapshot_preview1", "args_get")
export declare function args_get(argv: usize, argvBuf: usize): u16;

@external("wasi_snapshot_preview1", "fd_pread")
export declare function fd_pread(fd: u32, iovs: usize, iovsLen: u32, offset: u64, nread: usize): u16;

@external("wasi_snapshot_preview1", "fd_pwrite")
export declare function fd_pwrite(fd: u32, iovs: usize, iovsLen: u32, offset: u64, nwritten: usize): u16;

@external("wasi_snapshot_preview1", "fd_seek")
export declare function fd_seek(fd: u32, offset: i64, whence: u8, newOffset: usize): u16;

@external("wasi_snapshot_preview1", "fd_close")
export declare function fd_close(fd: u32): u16;

@external("wasi_snapshot_preview1", "fd_datasync")
export declare function fd_datasync(fd: u32): u16;

@external("wasi_snapshot_preview1", "fd_prestat_get")
export declare function fd_prestat_get(fd: u32, buf: usize): u16;

@external("wasi_snapshot_preview1", "path_open")
export declare function path_open(
  dirFd: u32, dirFlags: u32, path: usize, pathLen: usize, oflags: u16,
  rightsBase: u64, rightsInheriting: u64, fdflags: u16, fd: usize,
): u16;

@external("wasi_snapshot_preview1", "proc_exit")
export declare function proc_exit(code: u32): void;

/** CLOCK_REALTIME. */
export const CLOCK_REALTIME: u32 = 0;
/** CLOCK_MONOTONIC. */
export const CLOCK_MONOTONIC: u32 = 1;

const OUT_CAP: usize = 65536;
const outBuf = memory.data(<i32>OUT_CAP);
let outLen: usize = 0;
const scratch = memory.data(32, 8);

/** Writes all of [p, p+n) to `fd` (one fd_write per call the host takes). */
export function writeAll(fd: u32, p: usize, n: usize): void {
  while (n > 0) {
    store<u32>(scratch, <u32>p);
    store<u32>(scratch, <u32>n, 4);
    if (fd_write(fd, scratch, 1, scratch + 8) != 0) proc_exit(71);
    const done = <usize>load<u32>(scratch, 8);
    p += done;
    n -= done;
  }
}

/** Sends what stdout's buffer holds. */
export function flush(): void {
  if (outLen > 0) writeAll(1, outBuf, outLen);
  outLen = 0;
}

/** Appends one byte to stdout's buffer. */
export function putByte(b: u32): void {
  if (outLen == OUT_CAP) flush();
  store<u8>(outBuf + outLen, <u8>b);
  outLen++;
}

/** Appends [p, p+n) to stdout's buffer. */
export function putBytes(p: usize, n: usize): void {
  while (n > 0) {
    if (outLen == OUT_CAP) flush();
    const k = min(n, OUT_CAP - outLen);
    memory.copy(outBuf + outLen, p, k);
    outLen += k;
    p += k;
    n -= k;
  }
}

/** Appends an ASCII string (a literal: nothing is allocated). */
export function putStr(s: string): void {
  for (let i = 0; i < s.length; i++) putByte(<u32>s.charCodeAt(i));
}

/** Appends `n` in decimal. */
export function putU64(n: u64): void {
  const digits = scratch + 31;
  let p = digits;
  do {
    store<u8>(p, <u8>(48 + <u32>(n % 10)));
    p--;
    n /= 10;
  } while (n != 0);
  putBytes(p + 1, digits - p);
}

/** Appends `n` as 16 hex digits. */
export function putHex64(n: u64): void {
  for (let shift = 60; shift >= 0; shift -= 4) {
    const d = <u32>((n >> <u64>shift) & 15);
    putByte(d < 10 ? 48 + d : 87 + d);
  }
}

/** Says `msg` on stderr and exits with `code`. */
export function fail(msg: string, code: u32): void {
  flush();
  for (let i = 0; i < msg.length; i++) putByte(<u32>msg.charCodeAt(i));
  putByte(10);
  writeAll(2, outBuf, outLen);
  outLen = 0;
  proc_exit(code);
}

/** CLOCK_MONOTONIC in nanoseconds. */
export function monotonicNs(): u64 {
  if (clock_time_get(CLOCK_MONOTONIC, 1000, scratch) != 0) return 0;
  return load<u64>(scratch);
}

/** CLOCK_REALTIME in nanoseconds (host input: two runs of the guest differ here). */
export function realtimeNs(): u64 {
  if (clock_time_get(CLOCK_REALTIME, 1000, scratch) != 0) return 0;
  return load<u64>(scratch);
}

/** Parses a decimal natural number from [p, p+n); -1 when it is not one. */
export function parseNat(p: usize, n: usize): i64 {
  if (n == 0 || n > 18) return -1;
  let v: i64 = 0;
  for (let i: usize = 0; i < n; i++) {
    const c = <i64>load<u8>(p + i) - 48;
    if (c < 0 || c > 9) return -1;
    v = v * 10 + c;
  }
  return v;
}

/** Where `arg` found its argument. */
export let argPtr: usize = 0;

/**
 * The length of command-line argument `i` (argv[0] is the program), found at `argPtr`, with
 * `buf` (`cap` bytes) to read the arguments into; -1 when there is no such argument.
 */
export function arg(i: u32, buf: usize, cap: usize): i64 {
  if (args_sizes_get(scratch, scratch + 4) != 0) return -1;
  const argc = load<u32>(scratch), size = <usize>load<u32>(scratch, 4);
  if (i >= argc || <usize>argc * 4 + size > cap) return -1;
  if (args_get(buf, buf + <usize>argc * 4) != 0) return -1;
  argPtr = <usize>load<u32>(buf + <usize>i * 4);
  let n: i64 = 0;
  while (load<u8>(argPtr + <usize>n) != 0) n++;
  return n;
}

/** Whether [p, p+n) is the ASCII `word`. */
export function is(p: usize, n: usize, word: string): bool {
  if (n != <usize>word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>word.charCodeAt(i)) return false;
  }
  return true;
}

/** Length of the word at [p, end) (up to a space). */
export function wordLen(p: usize, end: usize): usize {
  let q = p;
  while (q < end && load<u8>(q) != 32) q++;
  return q - p;
}
