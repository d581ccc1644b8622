// kvpersist: the kvstore's PERSIST command and its log records (kvlog.ts): each change is
// appended as its command line before the store changes; PERSIST replays a log onto the store.
// AssemblyScript, built by guests/build.ts.

import { alloc, free } from "./heap";
import { del, set } from "./kvtable";
import { is, putByte, putStr, putU64, wordLen } from "./wasi";
import {
  logAppend,
  logClose,
  logErrno,
  logFd,
  logLength,
  logOpen,
  logPart,
  logRead,
  logRewind,
  logToEnd,
} from "./kvlog";

const SET_ = memory.data<u8>([83, 69, 84, 32]); // "SET "
const NL = memory.data<u8>([10]);
const SP = memory.data<u8>([32]);

/** Appends the command line [p, p+n) to the log when persisting; false when that failed. */
export function logLine(p: usize, n: usize): bool {
  if (logFd < 0) return true;
  logPart(p, n);
  logPart(NL, 1);
  return logAppend();
}

export function putLogErr(): void {
  putStr("ERR log write failed (errno ");
  putU64(logErrno);
  putStr(")");
}

/** Appends the record `SET key value` to the log when persisting; false when that failed. */
export function logSet(k: usize, kn: usize, v: usize, vn: usize): bool {
  if (logFd < 0) return true;
  logPart(SET_, 4);
  logPart(k, kn);
  logPart(SP, 1);
  logPart(v, vn);
  logPart(NL, 1);
  return logAppend();
}

/** Applies log record [p, p+n) (a SET or DEL line); false when it is not one or memory is short. */
export function applyRecord(p: usize, n: usize): bool {
  const end = p + n;
  const cn = wordLen(p, end);
  const k = p + cn + 1;
  const kn = k <= end ? wordLen(k, end) : 0;
  if (kn == 0) return false;
  if (is(p, cn, "DEL")) {
    del(k, kn);
    return true;
  }
  const v = k + kn + 1;
  return is(p, cn, "SET") && v <= end && set(k, kn, v, end - v);
}

/**
 * PERSIST name: opens the log in file `name` of the preopened directory, replays its records
 * onto the store, then logs every change; PERSIST off closes it.
 */
export function persist(name: usize, nn: usize): void {
  if (is(name, nn, "off")) {
    logClose();
    putStr("OK\n");
    return;
  }
  if (nn == 0) return putStr("ERR usage: PERSIST name|off\n");
  if (logFd >= 0) return putStr("ERR already persisting\n");
  if (!logOpen(name, nn)) {
    putStr("ERR persist: errno ");
    putU64(logErrno);
    putByte(10);
    return;
  }
  let cap: usize = 1 << 20;
  let buf = alloc(cap);
  let have: usize = 0, records: u64 = 0, left = logLength;
  let ok = buf != 0 && logRewind();
  while (ok && left > 0) {
    if (have == cap) { // a record longer than the buffer: a buffer twice as long
      const bigger = alloc(cap << 1);
      if (bigger == 0) ok = false;
      else {
        memory.copy(bigger, buf, have);
        free(buf);
        buf = bigger;
        cap <<= 1;
      }
      if (!ok) break;
    }
    const got = logRead(buf + have, <usize>min(<u64>(cap - have), left));
    if (got <= 0) {
      ok = false;
      break;
    }
    left -= <u64>got;
    const end = have + <usize>got;
    let start: usize = 0;
    for (let i = have; i < end; i++) {
      if (load<u8>(buf + i) != 10) continue;
      if (!applyRecord(buf + start, i - start)) ok = false;
      if (!ok) break;
      records++;
      start = i + 1;
    }
    memory.copy(buf, buf + start, end - start);
    have = end - start;
  }
  if (buf != 0) free(buf);
  if (!ok || have != 0 || !logToEnd()) {
    logClose();
    putStr("ERR persist: log record ");
    putU64(records + 1);
    putStr(" not applied\n");
    return;
  }
  putStr("OK PERSIST records=");
  putU64(records);
  putStr(" bytes=");
  putU64(logLength);
  putByte(10);
}
