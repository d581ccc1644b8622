/**
 * The machine's drives (`--drive`) as WASI files for a WebAssembly guest: one preopened
 * directory, fd 3 named `/drives`, holding one file per drive named by its id. `path_open`
 * gives an fd on a drive; `fd_read`, `fd_write` (at the fd's position, which `fd_seek` and
 * `fd_tell` move and tell), `fd_pread`, `fd_pwrite`, `fd_sync`, `fd_datasync`,
 * `fd_filestat_get`, `fd_fdstat_get` and `fd_close` work on it. A write goes through
 * `DriveFile.guestWrite`, as the synthetic workloads' disk writes: the data, then its blocks
 * marked dirty, written and in every named bitmap, so a block migration resends them.
 *
 * A drive is a raw image of fixed size: a write is cut at its end (nothing written at or past
 * it: ENOSPC), `O_TRUNC` is ignored (as Linux does for a block device), `O_EXCL` fails (it
 * exists), nothing can be created. The guest writes only to an active drive (it runs only
 * while they are: domain/block_activation.ts); a write to an inactive one fails with EIO.
 *
 * The open files (fd, drive id, position, flags) are part of the guest's state: the vCPU
 * saves them with the rest ({@link WasiDrives.files}) and a destination restores them
 * ({@link WasiDrives.restore}) after checking every drive is its own too
 * ({@link checkOpenFiles}).
 *
 * @module
 */

import { driveActive, DriveFile, type SharedDrive } from "../disk/drive.ts";
import { DeviceStateError } from "../memory/device_state.ts";

/** The preopened directory's fd and name. */
export const DRIVES_FD = 3;
/** The preopened directory's name (a guest's libc maps paths under it to fd 3). */
export const DRIVES_DIR = "/drives";
/** Most files a guest keeps open at once. */
export const MAX_OPEN_FILES = 64;

/** An open file's flags as saved: readable, writable, append, sync each write. */
export const F_READ = 1, F_WRITE = 2, F_APPEND = 4, F_SYNC = 8;

/** An open file of the guest, as its state carries it. */
export interface OpenFile {
  fd: number;
  /** The drive's id. */
  drive: string;
  /** The fd's position, bytes. */
  pos: number;
  /** F_READ | F_WRITE | F_APPEND | F_SYNC. */
  flags: number;
}

/** The guest's memory as the host writes it: bytes, a view, and the dirty mark of a range. */
export interface GuestBytes {
  u8: Uint8Array;
  dv: DataView;
  mark(addr: number, len: number): void;
}

/** The guest's memory `memory` as the host writes it, marking pages in the dirty log `dirty`. */
export function guestBytes(memory: WebAssembly.Memory, dirty: Uint8Array): GuestBytes {
  // The memory grows (memory.grow): views of its growable buffer follow its size.
  const buffer = (memory as unknown as { toResizableBuffer(): SharedArrayBuffer })
    .toResizableBuffer();
  return {
    u8: new Uint8Array(buffer),
    dv: new DataView(buffer),
    mark(addr: number, len: number) {
      if (len <= 0) return;
      for (let p = addr >>> 12; p <= (addr + len - 1) >>> 12; p++) dirty[p] = 1;
    },
  };
}

const ESUCCESS = 0, EBADF = 8, EEXIST = 20, EINVAL = 28, EIO = 29, EISDIR = 31;
const EMFILE = 33, ENOENT = 44, ENOSPC = 51, ENOTDIR = 54, ESPIPE = 70;
const FILETYPE_DIRECTORY = 3, FILETYPE_REGULAR = 4;
const OFLAG_DIRECTORY = 2, OFLAG_EXCL = 4;
const FDFLAG_APPEND = 1, FDFLAG_DSYNC = 2, FDFLAG_RSYNC = 8, FDFLAG_SYNC = 16;
const RIGHT_READ = 1n << 1n, RIGHT_WRITE = 1n << 6n;
/** Rights of a drive file: datasync, read, seek, fdstat flags, sync, tell, write, filestat. */
const FILE_RIGHTS = (1n << 0n) | RIGHT_READ | (1n << 2n) | (1n << 3n) | (1n << 4n) | (1n << 5n) |
  RIGHT_WRITE | (1n << 7n) | (1n << 21n);
/** Rights of the directory: path_open and path_filestat_get. */
const DIR_RIGHTS = (1n << 13n) | (1n << 18n);

/**
 * Checks a loaded state's open files against this machine's drives: each names a drive it
 * has, of a size its position fits, on a distinct fd above the preopen. Throws
 * DeviceStateError naming the first that does not.
 */
export function checkOpenFiles(
  files: readonly OpenFile[],
  drives: readonly { id: string; size: number }[],
): void {
  if (files.length > MAX_OPEN_FILES) {
    throw new DeviceStateError(`wasm guest state: ${files.length} open files`);
  }
  const fds = new Set<number>();
  for (const f of files) {
    const d = drives.find((x) => x.id === f.drive);
    if (!d) {
      throw new DeviceStateError(
        `the guest has drive '${f.drive}' open; this machine has no --drive of that id`,
      );
    }
    if (f.fd <= DRIVES_FD || fds.has(f.fd) || f.flags & ~15 || f.pos > 2 ** 53) {
      throw new DeviceStateError(`wasm guest state: open file fd ${f.fd} invalid`);
    }
    fds.add(f.fd);
  }
}

/** The drives as WASI files, in the vCPU Worker. */
export class WasiDrives {
  readonly #drives: readonly SharedDrive[];
  readonly #opened = new Map<number, DriveFile>();
  readonly #files = new Map<number, { drive: number; pos: number; flags: number }>();
  readonly #mem: GuestBytes;
  readonly #name = new TextEncoder().encode(DRIVES_DIR);

  /** The files of `drives`, reading and writing guest memory through `mem`. */
  constructor(drives: readonly SharedDrive[], mem: GuestBytes) {
    this.#drives = drives;
    this.#mem = mem;
  }

  /** Whether `fd` is this host's (the directory or a file), not stdio. */
  owns(fd: number): boolean {
    return this.#drives.length > 0 && (fd === DRIVES_FD || this.#files.has(fd));
  }

  /** The open files, for the guest's state. */
  files(): OpenFile[] {
    return [...this.#files].map(([fd, f]) => ({
      fd,
      drive: this.#drives[f.drive].id,
      pos: f.pos,
      flags: f.flags,
    }));
  }

  /** Replaces the open files by a loaded state's (checked by {@link checkOpenFiles}). */
  restore(files: readonly OpenFile[]): void {
    this.#files.clear();
    for (const f of files) {
      const drive = this.#drives.findIndex((d) => d.id === f.drive);
      if (drive >= 0) this.#files.set(f.fd, { drive, pos: f.pos, flags: f.flags });
    }
  }

  /** Closes the images this Worker opened. */
  close(): void {
    for (const f of this.#opened.values()) f.close();
    this.#opened.clear();
  }

  #file(i: number): DriveFile {
    let f = this.#opened.get(i);
    if (!f) this.#opened.set(i, f = new DriveFile(this.#drives[i]));
    return f;
  }

  /** fd_prestat_get: fd 3 is a directory whose name has `/drives`' length. */
  prestatGet(fd: number, buf: number): number {
    if (fd !== DRIVES_FD || this.#drives.length === 0) return EBADF;
    const { dv, mark } = this.#mem;
    mark(buf, 8);
    dv.setUint8(buf, 0);
    dv.setUint32(buf + 4, this.#name.length, true);
    return ESUCCESS;
  }

  /** fd_prestat_dir_name. */
  prestatDirName(fd: number, buf: number, len: number): number {
    if (fd !== DRIVES_FD || this.#drives.length === 0) return EBADF;
    if (len < this.#name.length) return EINVAL;
    this.#mem.mark(buf, this.#name.length);
    this.#mem.u8.set(this.#name, buf);
    return ESUCCESS;
  }

  /** path_open in the directory: a drive by its id. */
  pathOpen(
    dirFd: number,
    path: number,
    pathLen: number,
    oflags: number,
    rights: bigint,
    fdflags: number,
    out: number,
  ): number {
    if (dirFd !== DRIVES_FD || this.#drives.length === 0) return EBADF;
    const found = this.#lookup(path, pathLen);
    if (found === "dir") return oflags & OFLAG_EXCL ? EEXIST : EISDIR;
    if (found < 0) return ENOENT;
    if (oflags & OFLAG_DIRECTORY) return ENOTDIR;
    if (oflags & OFLAG_EXCL) return EEXIST;
    if (this.#files.size >= MAX_OPEN_FILES) return EMFILE;
    let fd = DRIVES_FD + 1;
    while (this.#files.has(fd)) fd++;
    const flags = (BigInt.asUintN(64, rights) & RIGHT_READ ? F_READ : 0) |
      (BigInt.asUintN(64, rights) & RIGHT_WRITE ? F_WRITE : 0) |
      (fdflags & FDFLAG_APPEND ? F_APPEND : 0) |
      (fdflags & (FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC) ? F_SYNC : 0);
    this.#file(found); // opens the image now: a failure shows here, not at the first write
    this.#files.set(fd, { drive: found, pos: 0, flags });
    this.#mem.mark(out, 4);
    this.#mem.dv.setUint32(out, fd, true);
    return ESUCCESS;
  }

  /** path_filestat_get in the directory. */
  pathFilestatGet(dirFd: number, path: number, pathLen: number, buf: number): number {
    if (dirFd !== DRIVES_FD || this.#drives.length === 0) return EBADF;
    const found = this.#lookup(path, pathLen);
    if (found === "dir") return this.#filestat(buf, FILETYPE_DIRECTORY, 0);
    if (found < 0) return ENOENT;
    return this.#filestat(buf, FILETYPE_REGULAR, this.#drives[found].size);
  }

  /** fd_read (`at` null) at the fd's position, or fd_pread at `at`. */
  read(fd: number, iovs: number, iovsLen: number, at: bigint | null, out: number): number {
    const f = this.#files.get(fd);
    if (!f) return fd === DRIVES_FD ? EISDIR : EBADF;
    if (!(f.flags & F_READ)) return EBADF;
    const size = this.#drives[f.drive].size;
    let pos = at === null ? f.pos : Number(at);
    if (pos < 0) return EINVAL;
    let total = 0;
    for (let i = 0; i < iovsLen; i++) {
      const [ptr, len] = this.#iov(iovs, i);
      const n = Math.max(0, Math.min(len, size - pos));
      if (n === 0) break;
      // The bytes, then the mark (a dirty-log sync between them would lose the bytes).
      this.#file(f.drive).read(pos, this.#mem.u8.subarray(ptr, ptr + n));
      this.#mem.mark(ptr, n);
      pos += n, total += n;
      if (n < len) break;
    }
    if (at === null) f.pos = pos;
    this.#put32(out, total);
    return ESUCCESS;
  }

  /** fd_write (`at` null) at the fd's position (its end with append), or fd_pwrite at `at`. */
  write(fd: number, iovs: number, iovsLen: number, at: bigint | null, out: number): number {
    const f = this.#files.get(fd);
    if (!f) return fd === DRIVES_FD ? EISDIR : EBADF;
    if (!(f.flags & F_WRITE)) return EBADF;
    const drive = this.#drives[f.drive];
    if (!driveActive(drive)) return EIO;
    let pos = at !== null ? Number(at) : f.flags & F_APPEND ? drive.size : f.pos;
    if (pos < 0) return EINVAL;
    let total = 0, wanted = 0;
    for (let i = 0; i < iovsLen; i++) {
      const [ptr, len] = this.#iov(iovs, i);
      wanted += len;
      const n = Math.max(0, Math.min(len, drive.size - pos));
      if (n > 0) this.#file(f.drive).guestWrite(pos, this.#mem.u8.subarray(ptr, ptr + n));
      pos += n, total += n;
      if (n < len) break;
    }
    if (total === 0 && wanted > 0) return ENOSPC;
    if (f.flags & F_SYNC && total > 0) this.#file(f.drive).sync();
    if (at === null) f.pos = pos;
    this.#put32(out, total);
    return ESUCCESS;
  }

  /** fd_seek: whence 0 set, 1 current, 2 end; a negative result is EINVAL. */
  seek(fd: number, offset: bigint, whence: number, out: number): number {
    const f = this.#files.get(fd);
    if (!f) return fd === DRIVES_FD ? ESPIPE : EBADF;
    const base = whence === 0
      ? 0
      : whence === 1
      ? f.pos
      : whence === 2
      ? this.#drives[f.drive].size
      : -1;
    if (base < 0) return EINVAL;
    const pos = base + Number(offset);
    if (pos < 0 || !Number.isSafeInteger(pos)) return EINVAL;
    f.pos = pos;
    this.#mem.mark(out, 8);
    this.#mem.dv.setBigUint64(out, BigInt(pos), true);
    return ESUCCESS;
  }

  /** fd_tell. */
  tell(fd: number, out: number): number {
    return this.seek(fd, 0n, 1, out);
  }

  /** fd_sync and fd_datasync: the image's data to the device. */
  sync(fd: number): number {
    const f = this.#files.get(fd);
    if (!f) return fd === DRIVES_FD ? ESUCCESS : EBADF;
    this.#file(f.drive).sync();
    return ESUCCESS;
  }

  /** fd_close (the preopened directory stays). */
  close_(fd: number): number {
    if (fd === DRIVES_FD) return ESUCCESS;
    return this.#files.delete(fd) ? ESUCCESS : EBADF;
  }

  /** fd_fdstat_set_flags: append and the sync flags; nonblock changes nothing on a file. */
  setFlags(fd: number, fdflags: number): number {
    const f = this.#files.get(fd);
    if (!f) return fd === DRIVES_FD ? ESUCCESS : EBADF;
    f.flags = (f.flags & (F_READ | F_WRITE)) | (fdflags & FDFLAG_APPEND ? F_APPEND : 0) |
      (fdflags & (FDFLAG_DSYNC | FDFLAG_RSYNC | FDFLAG_SYNC) ? F_SYNC : 0);
    return ESUCCESS;
  }

  /** fd_fdstat_get. */
  fdstatGet(fd: number, buf: number): number {
    const f = this.#files.get(fd);
    if (!f && fd !== DRIVES_FD) return EBADF;
    const { dv, mark } = this.#mem;
    mark(buf, 24);
    dv.setUint8(buf, f ? FILETYPE_REGULAR : FILETYPE_DIRECTORY);
    const flags = f
      ? (f.flags & F_APPEND ? FDFLAG_APPEND : 0) | (f.flags & F_SYNC ? FDFLAG_SYNC : 0)
      : 0;
    dv.setUint16(buf + 2, flags, true);
    const rights = f
      ? FILE_RIGHTS & ~(f.flags & F_READ ? 0n : RIGHT_READ) &
        ~(f.flags & F_WRITE ? 0n : RIGHT_WRITE)
      : DIR_RIGHTS;
    dv.setBigUint64(buf + 8, rights, true);
    dv.setBigUint64(buf + 16, f ? 0n : FILE_RIGHTS, true);
    return ESUCCESS;
  }

  /** fd_filestat_get. */
  filestatGet(fd: number, buf: number): number {
    const f = this.#files.get(fd);
    if (fd === DRIVES_FD) return this.#filestat(buf, FILETYPE_DIRECTORY, 0);
    if (!f) return EBADF;
    return this.#filestat(buf, FILETYPE_REGULAR, this.#drives[f.drive].size);
  }

  /** A drive's index by the path [path, path + len), "dir" for the directory, else -1. */
  #lookup(path: number, len: number): number | "dir" {
    const name = new TextDecoder().decode(this.#mem.u8.slice(path, path + len))
      .replace(/^(\.\/)+/, "");
    if (name === "" || name === ".") return "dir";
    return this.#drives.findIndex((d) => d.id === name);
  }

  #filestat(buf: number, type: number, size: number): number {
    const { dv, mark } = this.#mem;
    mark(buf, 64);
    for (let o = 0; o < 64; o += 8) dv.setBigUint64(buf + o, 0n, true);
    dv.setUint8(buf + 16, type);
    dv.setBigUint64(buf + 24, 1n, true);
    dv.setBigUint64(buf + 32, BigInt(size), true);
    return ESUCCESS;
  }

  #iov(iovs: number, i: number): [number, number] {
    const dv = this.#mem.dv;
    return [dv.getUint32(iovs + 8 * i, true), dv.getUint32(iovs + 8 * i + 4, true)];
  }

  #put32(addr: number, v: number): void {
    this.#mem.mark(addr, 4);
    this.#mem.dv.setUint32(addr, v, true);
  }
}
