// kvstore: a key-value store that serves line commands from stdin and answers one line each
// on stdout (see docs/guests.md for the protocol). Its data lives in its heap (heap.ts), which
// grows the linear memory as it fills; a command that needs memory the runtime will not give
// answers "ERR out of memory" and changes nothing. AssemblyScript, built by guests/build.ts.

import { alloc, free, heapBytes, liveBytes } from "./heap";
import {
  fail,
  fd_read,
  flush,
  parseNat,
  putByte,
  putBytes,
  putHex64,
  putStr,
  proc_exit,
  putU64,
  random_get,
  realtimeNs,
} from "./wasi";

// An entry: next in its bucket u32, hash u32, key length u32, value length u32, key, value.
const E_NEXT: usize = 0, E_HASH: usize = 4, E_KLEN: usize = 8, E_VLEN: usize = 12, E_KEY: usize = 16;

let seed: u32 = 0;
let table: usize = 0; // u32 bucket heads
let buckets: u32 = 0;
let count: u32 = 0;
let valueBytes: u64 = 0;

const IN_CAP: usize = 1 << 20;
const inBuf = memory.data(<i32>IN_CAP);
const keyBuf = memory.data(64);
const io = memory.data(16, 8);
const FILL_PREFIX = memory.data<u8>([102, 105, 108, 108, 58]); // "fill:"

function hash(p: usize, n: usize): u32 {
  let h: u32 = 2166136261 ^ seed;
  for (let i: usize = 0; i < n; i++) h = (h ^ load<u8>(p + i)) * 16777619;
  return h;
}

function same(a: usize, b: usize, n: usize): bool {
  for (let i: usize = 0; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/** The address of the link that points at key [k, k+n) (its value is 0 when absent). */
function slotOf(k: usize, n: usize, h: u32): usize {
  let slot = table + (<usize>(h & (buckets - 1)) << 2);
  let e = <usize>load<u32>(slot);
  while (e != 0) {
    if (load<u32>(e, E_HASH) == h && <usize>load<u32>(e, E_KLEN) == n && same(e + E_KEY, k, n)) {
      break;
    }
    slot = e + E_NEXT;
    e = <usize>load<u32>(slot);
  }
  return slot;
}

/** Doubles the table when it is three quarters full; stays as it is when memory is short. */
function maybeGrowTable(): void {
  if (buckets != 0 && count < buckets - (buckets >> 2)) return;
  const n: u32 = buckets == 0 ? 1024 : buckets << 1;
  const t = alloc(<usize>n << 2);
  if (t == 0) return;
  memory.fill(t, 0, <usize>n << 2);
  const old = table, oldN = buckets;
  table = t;
  buckets = n;
  for (let i: u32 = 0; i < oldN; i++) {
    let e = <usize>load<u32>(old + (<usize>i << 2));
    while (e != 0) {
      const next = <usize>load<u32>(e, E_NEXT);
      const b = table + (<usize>(load<u32>(e, E_HASH) & (n - 1)) << 2);
      store<u32>(e, load<u32>(b), E_NEXT);
      store<u32>(b, <u32>e);
      e = next;
    }
  }
  if (old != 0) free(old);
}

/** A new entry for key [k, k+kn) with room for `vn` value bytes; 0 when memory is short. */
function newEntry(k: usize, kn: usize, vn: usize, h: u32): usize {
  const e = alloc(E_KEY + kn + vn);
  if (e == 0) return 0;
  store<u32>(e, h, E_HASH);
  store<u32>(e, <u32>kn, E_KLEN);
  store<u32>(e, <u32>vn, E_VLEN);
  memory.copy(e + E_KEY, k, kn);
  return e;
}

/** Puts entry `e` where `slot` points, replacing what is there. */
function install(slot: usize, e: usize): void {
  const old = <usize>load<u32>(slot);
  valueBytes += <u64>load<u32>(e, E_VLEN);
  if (old != 0) {
    store<u32>(e, load<u32>(old, E_NEXT), E_NEXT);
    valueBytes -= <u64>load<u32>(old, E_VLEN);
    free(old);
  } else {
    store<u32>(e, 0, E_NEXT);
    count++;
  }
  store<u32>(slot, <u32>e);
}

function lookup(k: usize, kn: usize): usize {
  return <usize>load<u32>(slotOf(k, kn, hash(k, kn)));
}

/** SET: false when memory is short (nothing changed). */
function set(k: usize, kn: usize, v: usize, vn: usize): bool {
  maybeGrowTable();
  const h = hash(k, kn);
  const e = newEntry(k, kn, vn, h);
  if (e == 0) return false;
  memory.copy(e + E_KEY + kn, v, vn);
  install(slotOf(k, kn, h), e);
  return true;
}

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
      putStr("ERR out of memory (stored ");
      putU64(i);
      putStr(" of ");
      putU64(n);
      putStr(")\n");
      return;
    }
    fillValue(e + E_KEY + kn, size, i);
    install(slotOf(keyBuf, kn, h), e);
  }
  putStr("OK ");
  putU64(n);
  putByte(10);
}

/** SUM: the sum (mod 2^64) over the entries of FNV-1a 64 of key, one space, value. */
function sum(): u64 {
  let total: u64 = 0;
  for (let i: u32 = 0; i < buckets; i++) {
    let e = <usize>load<u32>(table + (<usize>i << 2));
    while (e != 0) {
      let h: u64 = 0xcbf29ce484222325;
      const n = E_KEY + <usize>load<u32>(e, E_KLEN) + <usize>load<u32>(e, E_VLEN);
      const kEnd = E_KEY + <usize>load<u32>(e, E_KLEN);
      for (let j = E_KEY; j < n; j++) {
        if (j == kEnd) h = (h ^ 32) * 0x100000001b3;
        h = (h ^ <u64>load<u8>(e + j)) * 0x100000001b3;
      }
      if (kEnd == n) h = (h ^ 32) * 0x100000001b3;
      total += h;
      e = <usize>load<u32>(e, E_NEXT);
    }
  }
  return total;
}

function is(p: usize, n: usize, word: string): bool {
  if (n != <usize>word.length) return false;
  for (let i = 0; i < word.length; i++) {
    if (<u32>load<u8>(p + <usize>i) != <u32>word.charCodeAt(i)) return false;
  }
  return true;
}

/** Length of the word at [p, end) (up to a space). */
function wordLen(p: usize, end: usize): usize {
  let q = p;
  while (q < end && load<u8>(q) != 32) q++;
  return q - p;
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
    else if (set(k, kn, rest, restN)) putStr("OK\n");
    else putStr("ERR out of memory\n");
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
    const slot = slotOf(k, kn, hash(k, kn));
    const e = <usize>load<u32>(slot);
    if (e == 0) putStr("NOT_FOUND\n");
    else {
      store<u32>(slot, load<u32>(e, E_NEXT));
      valueBytes -= <u64>load<u32>(e, E_VLEN);
      count--;
      free(e);
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
  seed = load<u32>(io);
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
