/**
 * WASI preview1 for a guest in the vCPU Worker: stdout/stderr become output records, stdin is
 * the ring `POST /machine/input` fills, the drives are files in the preopened directory
 * `/drives` (wasi_drives.ts), clocks, random, args, environment and exit. Calls
 * that may block (`fd_read`, `poll_oneoff`) unwind the guest's stack (asyncify) when the vCPU
 * must stop, and are called again when it is rewound. Every byte the host writes into guest
 * memory marks its page in the dirty log (the guest's own stores are instrumented).
 *
 * @module
 */

import { stdinPending, stdinRead } from "./wasm_shared.ts";
import type { GuestBytes, WasiDrives } from "./wasi_drives.ts";

/** WASI preview1's functions; the ones not implemented answer ENOSYS. */
export const WASI_FUNCTIONS = [
  "args_get",
  "args_sizes_get",
  "environ_get",
  "environ_sizes_get",
  "clock_res_get",
  "clock_time_get",
  "fd_advise",
  "fd_allocate",
  "fd_close",
  "fd_datasync",
  "fd_fdstat_get",
  "fd_fdstat_set_flags",
  "fd_fdstat_set_rights",
  "fd_filestat_get",
  "fd_filestat_set_size",
  "fd_filestat_set_times",
  "fd_pread",
  "fd_prestat_get",
  "fd_prestat_dir_name",
  "fd_pwrite",
  "fd_read",
  "fd_readdir",
  "fd_renumber",
  "fd_seek",
  "fd_sync",
  "fd_tell",
  "fd_write",
  "path_create_directory",
  "path_filestat_get",
  "path_filestat_set_times",
  "path_link",
  "path_open",
  "path_readlink",
  "path_remove_directory",
  "path_rename",
  "path_symlink",
  "path_unlink_file",
  "poll_oneoff",
  "proc_exit",
  "proc_raise",
  "sched_yield",
  "random_get",
  "sock_accept",
  "sock_recv",
  "sock_send",
  "sock_shutdown",
]; // deno-fmt-ignore

const ESUCCESS = 0, EBADF = 8, EINVAL = 28, ENOSYS = 52, ESPIPE = 70;

/** Thrown by proc_exit through the guest's frames. */
export class ProcExit extends Error {
  /** The exit code. */
  constructor(readonly code: number) {
    super(`proc_exit(${code})`);
  }
}

/** What the host needs from the vCPU around it. */
export interface HostDeps {
  /** The guest's memory, marked dirty as the host writes it (wasi_drives.ts guestBytes). */
  mem: GuestBytes;
  /** The drives as files (fds 3 and up). */
  files: WasiDrives;
  stdin: SharedArrayBuffer;
  args: string[];
  env: string[];
  /** Output: one record per write. */
  output(stream: "stdout" | "stderr", bytes: Uint8Array): void;
  /** CLOCK_MONOTONIC now, ns. */
  monotonicNs(): number;
  /** asyncify: 2 while rewinding; the host then calls stopRewind() and redoes the call. */
  rewinding(): boolean;
  stopRewind(): void;
  /** True when the vCPU must stop: the host then calls unwind() and returns. */
  mustStop(): boolean;
  unwind(): void;
  /** Blocks up to `ms` or until woken (input, runstate). */
  sleep(ms: number): void;
}

/** The `wasi_snapshot_preview1` import object. */
export function wasiImports(d: HostDeps): Record<string, (...a: never[]) => unknown> {
  const { u8, dv, mark } = d.mem;
  const files = d.files;
  const enc = new TextEncoder();
  const put32 = (addr: number, v: number) => {
    mark(addr, 4);
    dv.setUint32(addr, v, true);
  };
  const put64 = (addr: number, v: bigint) => {
    mark(addr, 8);
    dv.setBigUint64(addr, v, true);
  };
  const putBytes = (addr: number, b: Uint8Array) => {
    mark(addr, b.length);
    u8.set(b, addr);
  };
  const strings = (list: string[]) => list.map((s) => enc.encode(s + "\0"));
  const sizes = (list: string[], countPtr: number, sizePtr: number) => {
    const bs = strings(list);
    put32(countPtr, bs.length);
    put32(sizePtr, bs.reduce((n, b) => n + b.length, 0));
    return ESUCCESS;
  };
  const fill = (list: string[], ptrs: number, buf: number) => {
    let at = buf;
    strings(list).forEach((b, i) => {
      put32(ptrs + 4 * i, at);
      putBytes(at, b);
      at += b.length;
    });
    return ESUCCESS;
  };
  const realtimeNs = () => BigInt(Math.round((performance.timeOrigin + performance.now()) * 1e6));
  const clockNs = (id: number): bigint | null =>
    id === 0 ? realtimeNs() : id <= 3 ? BigInt(Math.round(d.monotonicNs())) : null;

  const fdRead = (fd: number, iovs: number, iovsLen: number, nread: number): number => {
    if (d.rewinding()) d.stopRewind();
    if (files.owns(fd)) return files.read(fd, iovs, iovsLen, null, nread);
    if (fd !== 0) return EBADF;
    for (;;) {
      if (stdinPending(d.stdin) > 0) {
        let total = 0;
        for (let i = 0; i < iovsLen; i++) {
          const ptr = dv.getUint32(iovs + 8 * i, true), len = dv.getUint32(iovs + 8 * i + 4, true);
          const got = stdinRead(d.stdin, len);
          putBytes(ptr, got);
          total += got.length;
          if (got.length < len) break;
        }
        put32(nread, total);
        return ESUCCESS;
      }
      if (d.mustStop()) {
        d.unwind();
        return ESUCCESS;
      }
      d.sleep(1000);
    }
  };

  const pollOneoff = (inPtr: number, outPtr: number, nsubs: number, nevents: number): number => {
    if (d.rewinding()) d.stopRewind();
    if (nsubs === 0) return EINVAL;
    const start = d.monotonicNs();
    for (;;) {
      let events = 0;
      let waitNs = Infinity;
      const now = d.monotonicNs();
      for (let i = 0; i < nsubs; i++) {
        const s = inPtr + 48 * i;
        const tag = dv.getUint8(s + 8);
        let ready = false;
        let error = ESUCCESS;
        if (tag === 0) {
          const abs = (dv.getUint16(s + 40, true) & 1) === 1;
          const timeout = Number(dv.getBigUint64(s + 24, true));
          const id = dv.getUint32(s + 16, true);
          const base = id === 0 ? Number(realtimeNs()) : start;
          const nowFor = id === 0 ? Number(realtimeNs()) : now;
          const left = (abs ? timeout : base + timeout) - nowFor;
          ready = left <= 0;
          if (!ready) waitNs = Math.min(waitNs, left);
        } else if (tag === 1 || tag === 2) {
          const fd = dv.getUint32(s + 16, true);
          if (tag === 1 && fd === 0) ready = stdinPending(d.stdin) > 0;
          else if (tag === 2 && (fd === 1 || fd === 2)) ready = true;
          else ready = true, error = EBADF;
        } else return EINVAL;
        if (ready) {
          const e = outPtr + 32 * events++;
          put64(e, dv.getBigUint64(s, true));
          mark(e + 8, 24);
          dv.setUint16(e + 8, error, true);
          dv.setUint8(e + 10, tag);
          dv.setBigUint64(e + 16, BigInt(tag === 1 ? stdinPending(d.stdin) : 0), true);
          dv.setUint16(e + 24, 0, true);
        }
      }
      if (events > 0) {
        put32(nevents, events);
        return ESUCCESS;
      }
      if (d.mustStop()) {
        d.unwind();
        return ESUCCESS;
      }
      d.sleep(Math.min(1000, waitNs / 1e6));
    }
  };

  const imports: Record<string, (...a: never[]) => unknown> = {};
  for (const name of WASI_FUNCTIONS) imports[name] = () => ENOSYS;
  Object.assign(imports, {
    args_sizes_get: (c: number, s: number) => sizes(d.args, c, s),
    args_get: (p: number, b: number) => fill(d.args, p, b),
    environ_sizes_get: (c: number, s: number) => sizes(d.env, c, s),
    environ_get: (p: number, b: number) => fill(d.env, p, b),
    clock_res_get: (id: number, out: number) => {
      if (clockNs(id) === null) return EINVAL;
      put64(out, 1000n);
      return ESUCCESS;
    },
    clock_time_get: (id: number, _precision: bigint, out: number) => {
      const t = clockNs(id);
      if (t === null) return EINVAL;
      put64(out, t);
      return ESUCCESS;
    },
    random_get: (buf: number, len: number) => {
      for (let at = 0; at < len; at += 65536) {
        const chunk = crypto.getRandomValues(new Uint8Array(Math.min(65536, len - at)));
        putBytes(buf + at, chunk);
      }
      return ESUCCESS;
    },
    fd_write: (fd: number, iovs: number, iovsLen: number, nwritten: number) => {
      if (files.owns(fd)) return files.write(fd, iovs, iovsLen, null, nwritten);
      if (fd !== 1 && fd !== 2) return EBADF;
      const parts: Uint8Array[] = [];
      let total = 0;
      for (let i = 0; i < iovsLen; i++) {
        const ptr = dv.getUint32(iovs + 8 * i, true), len = dv.getUint32(iovs + 8 * i + 4, true);
        parts.push(u8.slice(ptr, ptr + len));
        total += len;
      }
      const bytes = new Uint8Array(total);
      let at = 0;
      for (const p of parts) bytes.set(p, at), at += p.length;
      if (total > 0) d.output(fd === 1 ? "stdout" : "stderr", bytes);
      put32(nwritten, total);
      return ESUCCESS;
    },
    fd_read: fdRead,
    poll_oneoff: pollOneoff,
    fd_fdstat_get: (fd: number, buf: number) => {
      if (files.owns(fd)) return files.fdstatGet(fd, buf);
      if (fd > 2) return EBADF;
      mark(buf, 24);
      dv.setUint8(buf, 2); // character device
      dv.setUint16(buf + 2, 0, true);
      dv.setBigUint64(buf + 8, fd === 0 ? 2n : 64n, true); // fd_read / fd_write
      dv.setBigUint64(buf + 16, 0n, true);
      return ESUCCESS;
    },
    fd_close: (fd: number) => (files.owns(fd) ? files.close_(fd) : fd <= 2 ? ESUCCESS : EBADF),
    fd_seek: (fd: number, offset: bigint, whence: number, out: number) =>
      files.owns(fd) ? files.seek(fd, offset, whence, out) : fd <= 2 ? ESPIPE : EBADF,
    fd_tell: (fd: number, out: number) =>
      files.owns(fd) ? files.tell(fd, out) : fd <= 2 ? ESPIPE : EBADF,
    fd_pread: (fd: number, iovs: number, n: number, at: bigint, out: number) =>
      files.owns(fd) ? files.read(fd, iovs, n, at, out) : fd <= 2 ? ESPIPE : EBADF,
    fd_pwrite: (fd: number, iovs: number, n: number, at: bigint, out: number) =>
      files.owns(fd) ? files.write(fd, iovs, n, at, out) : fd <= 2 ? ESPIPE : EBADF,
    fd_sync: (fd: number) => (files.owns(fd) ? files.sync(fd) : fd <= 2 ? EINVAL : EBADF),
    fd_datasync: (fd: number) => (files.owns(fd) ? files.sync(fd) : fd <= 2 ? EINVAL : EBADF),
    fd_advise: (fd: number) => (files.owns(fd) || fd <= 2 ? ESUCCESS : EBADF),
    fd_filestat_get: (fd: number, buf: number) =>
      files.owns(fd) ? files.filestatGet(fd, buf) : EBADF,
    fd_prestat_get: (fd: number, buf: number) => files.prestatGet(fd, buf),
    fd_prestat_dir_name: (fd: number, buf: number, len: number) =>
      files.prestatDirName(fd, buf, len),
    path_open: (
      dirFd: number,
      _dirflags: number,
      path: number,
      pathLen: number,
      oflags: number,
      rights: bigint,
      _inheriting: bigint,
      fdflags: number,
      out: number,
    ) => files.pathOpen(dirFd, path, pathLen, oflags, rights, fdflags, out),
    path_filestat_get: (dirFd: number, _flags: number, path: number, len: number, buf: number) =>
      files.pathFilestatGet(dirFd, path, len, buf),
    fd_fdstat_set_flags: (fd: number, flags: number) =>
      files.owns(fd) ? files.setFlags(fd, flags) : fd <= 2 ? ESUCCESS : EBADF,
    sched_yield: () => ESUCCESS,
    proc_exit: (code: number) => {
      throw new ProcExit(code);
    },
  });
  return imports;
}
