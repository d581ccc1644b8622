// kvlog: the kvstore's write-ahead log in a file of its preopened directory (under Ferry, a
// drive of the machine: the directory `/drives`, a file per drive id). The file: a 16-byte
// header at 0 (`FKVLOG01`, then the log's committed length, u64 little-endian) and the records
// from byte 4096 on, one command line each (`SET key value\n`, `DEL key\n`). A command's
// records are appended (fd_write at the end of the log) before the store changes, then the
// header is rewritten (fd_pwrite): records past the committed length are not part of the log,
// so a command that fails leaves none. Replay reads the records back (fd_seek, fd_read).
// AssemblyScript, built by guests/build.ts.

import { fd_close, fd_datasync, fd_prestat_get, fd_pread, fd_pwrite, fd_read, fd_seek, fd_write, path_open } from "./wasi";

/** Where the records start. */
const LOG_START: u64 = 4096;
const MAGIC = "FKVLOG01";
const hdr = memory.data(16, 8);
const io = memory.data(16, 8);
const PARTS: u32 = 8;
const iovs = memory.data(<i32>PARTS * 8, 8);
let parts: u32 = 0;

/** The log's fd, -1 when not persisting. */
export let logFd: i32 = -1;
/** The committed length of the records, bytes. */
export let logLength: u64 = 0;
/** Bytes appended since the last commit. */
let appended: u64 = 0;
/** The errno of the last call that failed. */
export let logErrno: u32 = 0;

function setMagic(): void {
  for (let i = 0; i < 8; i++) store<u8>(hdr + <usize>i, <u8>MAGIC.charCodeAt(i));
}

function hasMagic(): bool {
  for (let i = 0; i < 8; i++) {
    if (<u32>load<u8>(hdr + <usize>i) != <u32>MAGIC.charCodeAt(i)) return false;
  }
  return true;
}

/** The first preopened directory's fd; -1 when there is none. */
function preopenDir(): i32 {
  for (let fd: u32 = 3; fd < 64; fd++) {
    const err = fd_prestat_get(fd, io);
    if (err == 8) return -1; // EBADF: preopens are numbered from 3 without gaps
    if (err == 0 && load<u8>(io) == 0) return <i32>fd;
  }
  return -1;
}

function fail(err: u16): bool {
  logErrno = err;
  return false;
}

/** Writes the header with the committed length at 0. */
function writeHeader(): bool {
  setMagic();
  store<u64>(hdr, logLength, 8);
  store<u32>(io, <u32>hdr);
  store<u32>(io, 16, 4);
  const err = fd_pwrite(<u32>logFd, io, 1, 0, io + 8);
  if (err != 0) return fail(err);
  if (load<u32>(io, 8) != 16) return fail(51); // ENOSPC: a file shorter than the header
  return true;
}

/**
 * Opens the file [p, p+n) of the preopened directory as the log: reads its header (a file
 * without one starts an empty log) and places the write position at the log's end. False,
 * with logErrno, when it cannot.
 */
export function logOpen(p: usize, n: usize): bool {
  const dir = preopenDir();
  if (dir < 0) return fail(44); // ENOENT
  // fd_datasync, fd_read, fd_seek, fd_tell, fd_write
  const rights: u64 = 1 | 2 | 4 | 32 | 64;
  const err = path_open(<u32>dir, 0, p, n, 0, rights, 0, 0, io);
  if (err != 0) return fail(err);
  logFd = <i32>load<u32>(io);
  store<u32>(io, <u32>hdr);
  store<u32>(io, 16, 4);
  const rerr = fd_pread(<u32>logFd, io, 1, 0, io + 8);
  if (rerr != 0) {
    logClose();
    return fail(rerr);
  }
  logLength = load<u32>(io, 8) == 16 && hasMagic() ? load<u64>(hdr, 8) : 0;
  appended = 0;
  if (logLength == 0 && !writeHeader()) {
    logClose();
    return false;
  }
  if (!seekTo(LOG_START + logLength)) {
    logClose();
    return false;
  }
  return true;
}

/** Closes the log. */
export function logClose(): void {
  if (logFd >= 0) fd_close(<u32>logFd);
  logFd = -1;
  logLength = appended = 0;
}

function seekTo(at: u64): bool {
  const err = fd_seek(<u32>logFd, <i64>at, 0, io);
  return err == 0 ? true : fail(err);
}

/** Adds [p, p+n) to the record being built. */
export function logPart(p: usize, n: usize): void {
  store<u32>(iovs + (<usize>parts << 3), <u32>p);
  store<u32>(iovs + (<usize>parts << 3), <u32>n, 4);
  parts++;
}

/**
 * Appends the record built with logPart at the log's end (uncommitted). False, with logErrno,
 * when the file took it only in part (ENOSPC at its end) or not at all; the position then goes
 * back to the end of what was appended before.
 */
export function logAppend(): bool {
  let total: u64 = 0;
  for (let i: u32 = 0; i < parts; i++) total += <u64>load<u32>(iovs + (<usize>i << 3), 4);
  let first: u32 = 0;
  let left = total;
  let ok = true;
  while (left > 0) {
    const err = fd_write(<u32>logFd, iovs + (<usize>first << 3), parts - first, io);
    if (err != 0) {
      ok = fail(err);
      break;
    }
    let done = <u64>load<u32>(io);
    left -= done;
    // Skips the iovecs written whole, moves into the one written in part.
    while (first < parts && done > 0) {
      const at = iovs + (<usize>first << 3);
      const len = <u64>load<u32>(at, 4);
      if (done >= len) {
        done -= len;
        first++;
      } else {
        store<u32>(at, load<u32>(at) + <u32>done);
        store<u32>(at, <u32>(len - done), 4);
        done = 0;
      }
    }
  }
  parts = 0;
  if (!ok) {
    seekTo(LOG_START + logLength + appended);
    return false;
  }
  appended += total;
  return true;
}

/** Makes the appended records part of the log (the header's length). */
export function logCommit(): bool {
  if (appended == 0) return true;
  logLength += appended;
  appended = 0;
  if (writeHeader()) return true;
  logLength = 0; // the header is unknown now: stop
  logClose();
  return false;
}

/** Drops the appended records (the position goes back to the committed end). */
export function logAbort(): void {
  appended = 0;
  seekTo(LOG_START + logLength);
}

/** fd_datasync of the log. */
export function logSync(): bool {
  const err = fd_datasync(<u32>logFd);
  return err == 0 ? true : fail(err);
}

/** Places the read position at the first record (replay). */
export function logRewind(): bool {
  return seekTo(LOG_START);
}

/** Reads up to `cap` bytes of records into `buf` (fd_read); -1 on an error. */
export function logRead(buf: usize, cap: usize): i64 {
  store<u32>(io, <u32>buf);
  store<u32>(io, <u32>cap, 4);
  const err = fd_read(<u32>logFd, io, 1, io + 8);
  if (err != 0) {
    fail(err);
    return -1;
  }
  return <i64>load<u32>(io, 8);
}

/** After a replay: the write position back at the log's end. */
export function logToEnd(): bool {
  return seekTo(LOG_START + logLength);
}
