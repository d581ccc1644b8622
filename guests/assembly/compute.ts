// compute: a sieve of Eratosthenes over a big array, round after round, writing its whole
// array every round (a guest that dirties memory fast). One line per round on stdout:
//   round R limit L primes P total T ms M
// R counts from 1 (continuity across a migration: no gap, no repeat, no reordering), L is
// the round's limit (it varies, so every round's answer differs), P the primes below L, T
// the sum of P over rounds 1..R (state carried from round to round), M the round's time.
// Arguments: [MIB] (the array, 1 byte per number; default 8) [ROUNDS] (default 0: forever).
// AssemblyScript, built by guests/build.ts.

import { alloc } from "./heap";
import { arg, argPtr, fail, flush, monotonicNs, parseNat, putStr, putU64 } from "./wasi";

const argBuf = memory.data(4096, 8);

function argOr(i: u32, dflt: i64): i64 {
  const n = arg(i, argBuf, 4096);
  if (n < 0) return dflt;
  const v = parseNat(argPtr, <usize>n);
  if (v < 0) fail("usage: compute [MIB] [ROUNDS]", 64);
  return v;
}

/** The limit of round `r`: the array's size less 0..15 steps of 64 KiB. */
function limitOf(size: usize, r: u64): usize {
  return size - <usize>((r * 7) % 16) * 65536;
}

/** Marks composites in [a, a+limit) and counts the primes below `limit`. */
function sieve(a: usize, limit: usize): u64 {
  memory.fill(a, 0, limit);
  store<u8>(a, 1);
  store<u8>(a + 1, 1);
  for (let p: usize = 2; p * p < limit; p++) {
    if (load<u8>(a + p) != 0) continue;
    for (let m = p * p; m < limit; m += p) store<u8>(a + m, 1);
  }
  let primes: u64 = 0;
  for (let i: usize = 0; i < limit; i++) primes += <u64>(1 - load<u8>(a + i));
  return primes;
}

function main(): void {
  const mib = argOr(1, 8);
  const rounds = <u64>argOr(2, 0);
  if (mib < 2 || mib > 2048) fail("compute: MIB must be 2..2048", 64);
  const size = <usize>mib << 20;
  const a = alloc(size);
  if (a == 0) fail("compute: out of memory for the array", 71);
  let total: u64 = 0;
  for (let r: u64 = 1; rounds == 0 || r <= rounds; r++) {
    const t0 = monotonicNs();
    const limit = limitOf(size, r);
    const primes = sieve(a, limit);
    total += primes;
    putStr("round ");
    putU64(r);
    putStr(" limit ");
    putU64(limit);
    putStr(" primes ");
    putU64(primes);
    putStr(" total ");
    putU64(total);
    putStr(" ms ");
    putU64((monotonicNs() - t0) / 1_000_000);
    putStr("\n");
    flush();
  }
}

main();
