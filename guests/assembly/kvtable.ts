// kvtable: the kvstore's hash table of entries in its heap (heap.ts): SET, DEL, lookups,
// SUM. AssemblyScript, built by guests/build.ts.

import { alloc, free } from "./heap";

// An entry: next in its bucket u32, hash u32, key length u32, value length u32, key, value.
export const E_NEXT: usize = 0, E_HASH: usize = 4, E_KLEN: usize = 8, E_VLEN: usize = 12, E_KEY: usize = 16;

/** The hash seed (random_get at start). */
export let seed: u32 = 0;
let table: usize = 0; // u32 bucket heads
let buckets: u32 = 0;
/** Keys stored. */
export let count: u32 = 0;
/** Value bytes stored. */
export let valueBytes: u64 = 0;

/** Sets the hash seed (before the first entry). */
export function setSeed(s: u32): void {
  seed = s;
}

export function hash(p: usize, n: usize): u32 {
  let h: u32 = 2166136261 ^ seed;
  for (let i: usize = 0; i < n; i++) h = (h ^ load<u8>(p + i)) * 16777619;
  return h;
}

export function same(a: usize, b: usize, n: usize): bool {
  for (let i: usize = 0; i < n; i++) if (load<u8>(a + i) != load<u8>(b + i)) return false;
  return true;
}

/** The address of the link that points at key [k, k+n) (its value is 0 when absent). */
export function slotOf(k: usize, n: usize, h: u32): usize {
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
export function maybeGrowTable(): void {
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
export function newEntry(k: usize, kn: usize, vn: usize, h: u32): usize {
  const e = alloc(E_KEY + kn + vn);
  if (e == 0) return 0;
  store<u32>(e, h, E_HASH);
  store<u32>(e, <u32>kn, E_KLEN);
  store<u32>(e, <u32>vn, E_VLEN);
  memory.copy(e + E_KEY, k, kn);
  return e;
}

/** Puts entry `e` where `slot` points, replacing what is there. */
export function install(slot: usize, e: usize): void {
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

export function lookup(k: usize, kn: usize): usize {
  return <usize>load<u32>(slotOf(k, kn, hash(k, kn)));
}

/** SET: false when memory is short (nothing changed). */
export function set(k: usize, kn: usize, v: usize, vn: usize): bool {
  maybeGrowTable();
  const h = hash(k, kn);
  const e = newEntry(k, kn, vn, h);
  if (e == 0) return false;
  memory.copy(e + E_KEY + kn, v, vn);
  install(slotOf(k, kn, h), e);
  return true;
}

/** DEL: false when the key is not there. */
export function del(k: usize, kn: usize): bool {
  const slot = slotOf(k, kn, hash(k, kn));
  const e = <usize>load<u32>(slot);
  if (e == 0) return false;
  store<u32>(slot, load<u32>(e, E_NEXT));
  valueBytes -= <u64>load<u32>(e, E_VLEN);
  count--;
  free(e);
  return true;
}

/** SUM: the sum (mod 2^64) over the entries of FNV-1a 64 of key, one space, value. */
export function sum(): u64 {
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
