// kvstore: a key-value store that serves line commands from stdin and answers one line each
// on stdout (see docs/guests.md for the protocol). Its data lives in its heap (heap.ts), which
// grows the linear memory as it fills; a command that needs memory the runtime will not give
// answers "ERR out of memory" and changes nothing. With PERSIST it keeps a write-ahead log of
// its changes in a file (a drive under Ferry, kvlog.ts) and replays it when it opens one.
// AssemblyScript, built by guests/build.ts.

import { free, heapBytes, liveBytes } from "./heap";
import {
  count,
  del,
  E_KEY,
  E_VLEN,
  hash,
  install,
  lookup,
  maybeGrowTable,
  newEntry,
  set,
  setSeed,
  slotOf,
  sum,
  valueBytes,
} from "./kvtable";
import { logLine, logSet, persist, putLogErr } from "./kvpersist";
import { logAbort, logCommit, logFd, logSync } from "./kvlog";
import {
  fail,
  fd_read,
  flush,
  is,
  parseNat,
  proc_exit,
  putByte,
  putBytes,
  putHex64,
  putStr,
  putU64,
  random_get,
  realtimeNs,
  wordLen,
} from "./wasi";

const IN_CAP: usize = 1 << 20;
const inBuf = memory.data(<i32>IN_CAP);
const keyBuf = memory.data(64);
const io = memory.data(16, 8);
const FILL_PREFIX = memory.data<u8>([102, 105, 108, 108, 58]); // "fill:"

/** The value FILL stores for item `i`: `size` letters from xorshift32 seeded by i. */
function fillValue(p: usize, size: usize, i: u32): void {
  let x: u32 = i * 2654435761 + 1;
  for (let j: usize = 0; j < size; j++) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    store<u8>(p + j, <u8>(97 + (x >> 8) % 26));
  }
}

/** FILL n size [prefix]: keys PREFIX0 .. PREFIX(n-1); answers how many it stored. */
function fill(n: u32, size: usize, prefix: usize, pn: usize): void {
  if (pn > 40) {
    putStr("ERR prefix longer than 40 bytes\n");
    return;
  }
  memory.copy(keyBuf, prefix, pn);
  for (let i: u32 = 0; i < n; i++) {
    let digits: usize = 1;
    for (let d: u32 = i; d >= 10; d /= 10) digits++;
    let d: u32 = i;
    for (let j = digits; j > 0; j--) {
      store<u8>(keyBuf + pn + j - 1, <u8>(48 + d % 10));
      d /= 10;
    }
    const kn = pn + digits;
    maybeGrowTable();
    const h = hash(keyBuf, kn);
    const e = newEntry(keyBuf, kn, size, h);
    if (e == 0) {
      logCommit();
      putStr("ERR out of memory (stored ");
      putU64(i);
      putStr(" of ");
      putU64(n);
      putStr(")\n");
      return;
    }
    fillValue(e + E_KEY + kn, size, i);
    if (!logSet(keyBuf, kn, e + E_KEY + kn, size)) {
      free(e);
      logCommit();
      putLogErr();
      putStr(" (stored ");
      putU64(i);
      putStr(" of ");
      putU64(n);
      putStr(")\n");
      return;
    }
    install(slotOf(keyBuf, kn, h), e);
  }
  logCommit();
  putStr("OK ");
  putU64(n);
  putByte(10);
}

/** Serves one command line [p, p+n) (without its newline). */
function serve(p: usize, n: usize): void {
  const end = p + n;
  const cn = wordLen(p, end);
  const k = p + cn + 1;
  const kn = k <= end ? wordLen(k, end) : 0;
  const rest = k + kn + 1;
  const hasRest = k <= end && rest <= end;
  const restN = hasRest ? end - rest : 0;
  if (is(p, cn, "SET")) {
    if (kn == 0 || !hasRest) putStr("ERR usage: SET key value\n");
    else if (!logLine(p, n)) {
      putLogErr();
      putByte(10);
    } else if (set(k, kn, rest, restN)) {
      logCommit();
      putStr("OK\n");
    } else {
      logAbort();
      putStr("ERR out of memory\n");
    }
  } else if (is(p, cn, "GET")) {
    const e: usize = kn == 0 ? 0 : lookup(k, kn);
    if (kn == 0) putStr("ERR usage: GET key\n");
    else if (e == 0) putStr("NOT_FOUND\n");
    else {
      putStr("VALUE ");
      putBytes(e + E_KEY + kn, <usize>load<u32>(e, E_VLEN));
      putByte(10);
    }
  } else if (is(p, cn, "DEL")) {
    if (kn == 0) {
      putStr("ERR usage: DEL key\n");
      return;
    }
    if (lookup(k, kn) == 0) putStr("NOT_FOUND\n");
    else if (!logLine(p, n)) {
      putLogErr();
      putByte(10);
    } else {
      del(k, kn);
      logCommit();
      putStr("DELETED\n");
    }
  } else if (is(p, cn, "FILL")) {
    const n = parseNat(k, kn);
    const sn = hasRest ? wordLen(rest, end) : 0;
    const size = parseNat(rest, sn);
    const prefix = rest + sn + 1;
    const hasPrefix = hasRest && prefix <= end;
    if (n < 0 || n > 0xffffffff || size < 0 || size > 0x4000_0000) {
      putStr("ERR usage: FILL count size [prefix]\n");
    } else if (hasPrefix) fill(<u32>n, <usize>size, prefix, end - prefix);
    else fill(<u32>n, <usize>size, FILL_PREFIX, 5);
  } else if (is(p, cn, "COUNT")) {
    putStr("COUNT ");
    putU64(count);
    putByte(10);
  } else if (is(p, cn, "SUM")) {
    putStr("SUM ");
    putHex64(sum());
    putByte(10);
  } else if (is(p, cn, "STATS")) {
    putStr("STATS keys=");
    putU64(count);
    putStr(" value-bytes=");
    putU64(valueBytes);
    putStr(" live=");
    putU64(liveBytes());
    putStr(" heap=");
    putU64(heapBytes());
    putStr(" memory=");
    putU64(<u64>memory.size() << 16);
    putByte(10);
  } else if (is(p, cn, "PERSIST")) persist(k, kn);
  else if (is(p, cn, "SYNC")) {
    if (logFd < 0) putStr("ERR not persisting\n");
    else if (logSync()) putStr("OK\n");
    else putLogErr(), putByte(10);
  } else if (is(p, cn, "PING")) putStr("PONG\n");
  else if (is(p, cn, "TIME")) {
    putStr("TIME ");
    putU64(realtimeNs());
    putByte(10);
  }
  else if (is(p, cn, "QUIT")) {
    putStr("BYE\n");
    flush();
    proc_exit(0);
  } else putStr("ERR unknown command\n");
}

function main(): void {
  if (random_get(io, 4) != 0) fail("kvstore: random_get failed", 70);
  setSeed(load<u32>(io));
  let have: usize = 0; // bytes in inBuf
  let scanned: usize = 0; // bytes of them with no newline
  let skipping = false; // discarding the rest of a line too long to serve
  for (;;) {
    flush();
    store<u32>(io, <u32>(inBuf + have));
    store<u32>(io, <u32>(IN_CAP - have), 4);
    if (fd_read(0, io, 1, io + 8) != 0) fail("kvstore: cannot read stdin", 74);
    const got = <usize>load<u32>(io, 8);
    if (got == 0) break;
    have += got;
    let start: usize = 0;
    for (let i = scanned; i < have; i++) {
      if (load<u8>(inBuf + i) != 10) continue;
      let n = i - start;
      if (n > 0 && load<u8>(inBuf + start + n - 1) == 13) n--;
      if (skipping) skipping = false;
      else if (n > 0) serve(inBuf + start, n);
      start = i + 1;
    }
    memory.copy(inBuf, inBuf + start, have - start);
    have -= start;
    scanned = have;
    if (have == IN_CAP) {
      if (!skipping) putStr("ERR line longer than 1 MiB\n");
      skipping = true;
      have = scanned = 0;
    }
  }
  flush();
}

main();
