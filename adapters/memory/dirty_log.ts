/**
 * The dirty log: one byte per page, non-zero = written since the last sync. The vCPU stores
 * marks with plain stores after writing the page's data; migration fetches and clears them.
 *
 * @module
 */

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1;

function wordsOf(map: Uint8Array): Uint32Array | null {
  return map.byteOffset % 4 === 0
    ? new Uint32Array(map.buffer, map.byteOffset, map.length >>> 2)
    : null;
}

/**
 * Fetch-and-clear: for every page marked in `dirty`, sets `into[p] = 1` (and `also[p] = 1`
 * when given) and clears `dirty[p]`.
 * Returns the number of pages it found marked. `into` must be at least as long as `dirty`.
 *
 * Scans 32-bit words, skipping zero words eight at a time, and clears a non-zero word with
 * Atomics.exchange, taking the marks from the value it replaced, not from the plain read.
 * Race reasoning:
 * - A mark stored after the plain read that found a word zero stays in the map: the next
 *   sync finds it.
 * - A mark stored between the plain read and the exchange is returned by the exchange, so it
 *   is never lost (a plain store of 0 could erase a neighbouring page's fresh mark).
 * - A mark stored after the exchange stays for the next sync. The page's data is copied after
 *   this sync, so the copy already holds that newer data; sending it once more next round is
 *   redundant but harmless.
 * - The vCPU writes data before the mark, so a page seen marked has its data visible.
 */
export function syncDirtyLog(dirty: Uint8Array, into: Uint8Array, also?: Uint8Array): number {
  if (into.length < dirty.length) throw new RangeError("syncDirtyLog: target map too small");
  if (also && also.length < dirty.length) {
    throw new RangeError("syncDirtyLog: second map too small");
  }
  const words = wordsOf(dirty);
  let found = 0;
  let tail = 0;
  if (words !== null) {
    const n = words.length;
    const n8 = n & ~7;
    for (let i = 0; i < n; i += 8) {
      if (
        i < n8 &&
        (words[i] | words[i + 1] | words[i + 2] | words[i + 3] | words[i + 4] | words[i + 5] |
            words[i + 6] | words[i + 7]) === 0
      ) continue;
      for (let k = i, stop = Math.min(i + 8, n); k < stop; k++) {
        if (words[k] === 0) continue;
        const v = Atomics.exchange(words, k, 0);
        for (let j = 0; j < 4; j++) {
          if (((v >>> (8 * j)) & 255) !== 0) {
            const p = k * 4 + (LITTLE_ENDIAN ? j : 3 - j);
            into[p] = 1;
            if (also) also[p] = 1;
            found++;
          }
        }
      }
    }
    tail = n * 4;
  }
  for (let p = tail; p < dirty.length; p++) {
    if (dirty[p] !== 0 && Atomics.exchange(dirty, p, 0) !== 0) {
      into[p] = 1;
      if (also) also[p] = 1;
      found++;
    }
  }
  return found;
}

/** Counts the non-zero bytes (marked pages) of a page map. */
export function countMarked(map: Uint8Array): number {
  const words = wordsOf(map);
  let count = 0;
  let tail = 0;
  if (words !== null) {
    for (let i = 0; i < words.length; i++) {
      const v = words[i];
      if (v === 0) continue;
      count += (v & 0xff ? 1 : 0) + (v & 0xff00 ? 1 : 0) + (v & 0xff0000 ? 1 : 0) +
        (v & 0xff000000 ? 1 : 0);
    }
    tail = words.length * 4;
  }
  for (let p = tail; p < map.length; p++) if (map[p] !== 0) count++;
  return count;
}
