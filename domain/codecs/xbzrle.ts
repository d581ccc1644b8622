/**
 * XBZRLE: a resent page as a delta against the copy the destination already has.
 *
 * The delta is a sequence of groups, each `uleb128(unchanged) uleb128(changed) <changed
 * bytes of the new page>`; unchanged bytes at the end of the page are not encoded, so an
 * identical page is an empty delta. Runs are maximal: an unchanged run stops at the first
 * byte that differs and a changed run at the first byte that is equal again, which makes the
 * delta of two pages unique. The byte layout, limits and errors are in `docs/wire-format.md`
 * ("XBZRLE page delta"). The idea is QEMU's (`xbzrle.c`); this code is Ferry's own.
 *
 * @module
 */
import { CodecError } from "./codec_error.ts";

/** Bytes a ULEB128 may take in a delta (enough for any 32-bit length). */
export const MAX_ULEB128_BYTES = 5;

/** Bytes `n` takes as ULEB128. */
function ulebLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 128);
    len++;
  }
  return len;
}

/** Writes `n` as ULEB128 at `d`; returns the offset after it. */
function putUleb(out: Uint8Array, d: number, n: number): number {
  while (n >= 0x80) {
    out[d++] = (n & 0x7f) | 0x80;
    n = Math.floor(n / 128);
  }
  out[d++] = n;
  return d;
}

/** 32-bit views of `a` and `b` when both (and their length) are 4-byte aligned. */
function words(a: Uint8Array, b: Uint8Array): [Uint32Array, Uint32Array] | null {
  if (((a.byteOffset | b.byteOffset | a.length) & 3) !== 0) return null;
  return [
    new Uint32Array(a.buffer, a.byteOffset, a.length >> 2),
    new Uint32Array(b.buffer, b.byteOffset, b.length >> 2),
  ];
}

/** The first index ≥ `i` where `old` and `cur` differ (`n` if none). */
function skipEqual(
  old: Uint8Array,
  cur: Uint8Array,
  w32: [Uint32Array, Uint32Array] | null,
  i: number,
  n: number,
): number {
  if (w32 !== null) {
    while ((i & 3) !== 0 && i < n && old[i] === cur[i]) i++;
    if ((i & 3) === 0) {
      const [o, c] = w32;
      const nw = n >> 2;
      let w = i >> 2;
      while (
        w + 4 <= nw &&
        ((o[w] ^ c[w]) | (o[w + 1] ^ c[w + 1]) | (o[w + 2] ^ c[w + 2]) | (o[w + 3] ^ c[w + 3])) ===
          0
      ) w += 4;
      while (w < nw && o[w] === c[w]) w++;
      i = w << 2;
    }
  }
  while (i < n && old[i] === cur[i]) i++;
  return i;
}

/** The first index ≥ `i` where `old` and `cur` are equal (`n` if none). */
function skipChanged(
  old: Uint8Array,
  cur: Uint8Array,
  w32: [Uint32Array, Uint32Array] | null,
  i: number,
  n: number,
): number {
  if (w32 !== null) {
    while ((i & 3) !== 0 && i < n && old[i] !== cur[i]) i++;
    if ((i & 3) === 0) {
      const [o, c] = w32;
      const nw = n >> 2;
      let w = i >> 2;
      for (; w < nw; w++) {
        const x = o[w] ^ c[w];
        if (((x - 0x01010101) & ~x & 0x80808080) !== 0) break; // a byte of x is zero
      }
      i = w << 2;
    }
  }
  while (i < n && old[i] !== cur[i]) i++;
  return i;
}

/**
 * Encodes `cur` as a delta against `old` (both one page, same length) into `out`.
 * Returns the delta's length (0 for identical pages), or -1 when the delta would be longer
 * than `out.length` or than the page: then the caller sends the whole page (`overflow`).
 * Only `out[0 .. length)` is written on success; on -1 `out` holds garbage.
 * `cur` must not change while this runs (encode a private copy of a live guest page).
 */
function encode(old: Uint8Array, cur: Uint8Array, out: Uint8Array): number {
  const n = cur.length;
  if (old.length !== n) {
    throw new RangeError(`xbzrle: old page has ${old.length} bytes, new page ${n}`);
  }
  const limit = Math.min(out.length, n);
  const w32 = words(old, cur);
  let i = 0;
  let d = 0;
  for (;;) {
    const zStart = i;
    i = skipEqual(old, cur, w32, i, n);
    if (i >= n) return d;
    const nzStart = i;
    i = skipChanged(old, cur, w32, i, n);
    const zrun = nzStart - zStart;
    const nzrun = i - nzStart;
    if (d + ulebLength(zrun) + ulebLength(nzrun) + nzrun > limit) return -1;
    d = putUleb(out, d, zrun);
    d = putUleb(out, d, nzrun);
    if (nzrun < 32) {
      for (let k = nzStart; k < i; k++) out[d++] = cur[k];
    } else {
      out.set(cur.subarray(nzStart, i), d);
      d += nzrun;
    }
  }
}

/** The value the last `readUleb` read (a module variable: no allocation per call). */
let ulebValue = 0;

/**
 * Reads the ULEB128 at `delta[i]` into `ulebValue`; returns the offset after it.
 * Throws on a truncated number or one longer than `MAX_ULEB128_BYTES`.
 */
function readUleb(delta: Uint8Array, i: number): number {
  let value = 0;
  let scale = 1;
  for (let k = 0; k < MAX_ULEB128_BYTES; k++) {
    if (i + k >= delta.length) {
      throw new CodecError(`XBZRLE delta truncated inside a ULEB128 at offset ${i}`);
    }
    const b = delta[i + k];
    value += (b & 0x7f) * scale;
    if ((b & 0x80) === 0) {
      ulebValue = value;
      return i + k + 1;
    }
    scale *= 128;
  }
  throw new CodecError(
    `XBZRLE delta has a ULEB128 longer than ${MAX_ULEB128_BYTES} bytes at offset ${i}`,
  );
}

/** Walks a delta, checking every group; copies the changed runs into `page` if `apply`. */
function walk(delta: Uint8Array, page: Uint8Array, apply: boolean): void {
  const n = page.length;
  const len = delta.length;
  let i = 0;
  let p = 0;
  while (i < len) {
    if (p >= n) {
      throw new CodecError(
        `XBZRLE delta has ${len - i} trailing bytes after the end of the page (offset ${i})`,
      );
    }
    const at = i;
    i = readUleb(delta, i);
    const zrun = ulebValue;
    if (zrun === 0 && at !== 0) {
      throw new CodecError(`XBZRLE delta has an empty unchanged run at offset ${at}`);
    }
    if (p + zrun > n) {
      throw new CodecError(`XBZRLE delta runs past the end of the page (offset ${at})`);
    }
    p += zrun;
    if (i >= len) {
      throw new CodecError(`XBZRLE delta truncated after an unchanged run (offset ${at})`);
    }
    const nzAt = i;
    i = readUleb(delta, i);
    const nzrun = ulebValue;
    if (nzrun === 0) {
      throw new CodecError(`XBZRLE delta has an empty changed run at offset ${nzAt}`);
    }
    if (p + nzrun > n) {
      throw new CodecError(`XBZRLE delta runs past the end of the page (offset ${nzAt})`);
    }
    if (i + nzrun > len) {
      throw new CodecError(
        `XBZRLE delta truncated: a changed run of ${nzrun} bytes has ${len - i} (offset ${nzAt})`,
      );
    }
    if (apply) {
      if (nzrun <= 128) {
        for (let k = 0; k < nzrun; k++) page[p + k] = delta[i + k];
      } else {
        page.set(delta.subarray(i, i + nzrun), p);
      }
    }
    i += nzrun;
    p += nzrun;
  }
}

/**
 * Applies `delta` to `page` in place (`page` holds the old copy, and the new one after).
 * Checks the whole delta before writing a byte: on a `CodecError` the page is unchanged.
 * Never reads or writes outside `delta` and `page`.
 */
function decode(delta: Uint8Array, page: Uint8Array): void {
  if (delta.length > page.length) {
    throw new CodecError(
      `XBZRLE delta of ${delta.length} bytes is longer than the page (${page.length})`,
    );
  }
  walk(delta, page, false);
  walk(delta, page, true);
}

/** The XBZRLE page codec: `encode` on the source, `decode` on the destination. */
export const xbzrle = { name: "xbzrle", encode, decode } as const;
