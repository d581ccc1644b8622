/**
 * The few libc calls the guest's memory needs, through Deno's FFI (loaded once per thread):
 * madvise(2) on parts of a SharedArrayBuffer (release-ram's MADV_DONTNEED, huge pages'
 * MADV_HUGEPAGE / MADV_NOHUGEPAGE) and reading small kernel files (/proc/self/smaps, the THP
 * mode in /sys, the boot id), which Deno itself reads only with --allow-all.
 *
 * A SharedArrayBuffer's data need not start on a page boundary, so callers name byte ranges
 * and get back the aligned part the kernel was actually advised about.
 *
 * @module
 */

/** madvise advice values (Linux, every architecture Deno runs on). */
export const MADV = { DONTNEED: 4, HUGEPAGE: 14, NOHUGEPAGE: 15, POPULATE_WRITE: 23 } as const;

const O_RDONLY = 0;
const O_CLOEXEC = 0o2000000;

type Libc = {
  symbols: {
    madvise(p: Deno.PointerValue, len: bigint, advice: number): number;
    madvise_async(p: Deno.PointerValue, len: bigint, advice: number): Promise<number>;
    open(path: Uint8Array, flags: number): number;
    read(fd: number, buf: Uint8Array, count: bigint): bigint;
    close(fd: number): number;
  };
};
let libc: Libc | null | undefined;

function open(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    if (Deno.build.os !== "linux") throw new Error("not Linux");
    libc = Deno.dlopen("libc.so.6", {
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
      madvise_async: {
        name: "madvise",
        parameters: ["pointer", "usize", "i32"],
        result: "i32",
        nonblocking: true,
      },
      open: { parameters: ["buffer", "i32"], result: "i32" },
      read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
      close: { parameters: ["i32"], result: "i32" },
    }) as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

/** Why libc cannot be called in this process (`what` says what for), or null when it can. */
export function libcUnavailable(what: string): string | null {
  if (Deno.build.os !== "linux") return `needs Linux (madvise) ${what}`;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return `needs --allow-ffi ${what}`;
  }
  return open() ? null : `could not load libc for madvise ${what}`;
}

/** The address of the first byte of `buf`'s data. */
export function bufferAddress(buf: SharedArrayBuffer | ArrayBuffer): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(buf))) as bigint;
}

/** The part [start, end) of bytes [offset, offset + length) of `buf` aligned to `align` bytes. */
export function alignedRange(
  buf: SharedArrayBuffer | ArrayBuffer,
  offset: number,
  length: number,
  align: number,
): { start: bigint; end: bigint } {
  const a = BigInt(align);
  const base = bufferAddress(buf);
  const start = (base + BigInt(offset) + a - 1n) & ~(a - 1n);
  const end = (base + BigInt(offset + length)) & ~(a - 1n);
  return { start, end: end > start ? end : start };
}

/**
 * Advises the `align`-aligned part of bytes [offset, offset + length) of `buf` (align ≥ 4096,
 * a power of two); returns the bytes advised, 0 when that part is empty or the call failed.
 */
export function madviseRange(
  buf: SharedArrayBuffer | ArrayBuffer,
  offset: number,
  length: number,
  advice: number,
  align = 4096,
): number {
  const call = madviseCall(buf, offset, length, align);
  if (!call) return 0;
  return call.c.symbols.madvise(call.ptr, call.len, advice) === 0 ? Number(call.len) : 0;
}

/** libc and the aligned range to advise, or null when there is nothing to call (or no libc). */
function madviseCall(
  buf: SharedArrayBuffer | ArrayBuffer,
  offset: number,
  length: number,
  align: number,
): { c: Libc; ptr: Deno.PointerValue; len: bigint } | null {
  const c = open();
  if (!c || length <= 0) return null;
  const { start, end } = alignedRange(buf, offset, length, align);
  return end > start ? { c, ptr: Deno.UnsafePointer.create(start), len: end - start } : null;
}

/**
 * {@link madviseRange} on one of the FFI's blocking threads: the calling thread goes on while
 * the kernel works (MADV_POPULATE_WRITE faults a range in, which takes ~0.3 s a GiB on 4 KiB
 * pages here). Resolves to the bytes advised, 0 when the call failed or could not be made.
 */
export async function madviseRangeAsync(
  buf: SharedArrayBuffer | ArrayBuffer,
  offset: number,
  length: number,
  advice: number,
): Promise<number> {
  const call = madviseCall(buf, offset, length, 4096);
  if (!call) return 0;
  return await call.c.symbols.madvise_async(call.ptr, call.len, advice) === 0
    ? Number(call.len)
    : 0;
}

/**
 * The text of a kernel file (procfs, sysfs), read with libc's open/read; null when it cannot
 * be read (no FFI, not Linux, no such file).
 */
export function readSystemFile(path: string): string | null {
  const c = open();
  if (!c) return null;
  const fd = c.symbols.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return null;
  try {
    const chunks: Uint8Array[] = [];
    let buf = new Uint8Array(64 << 10);
    for (;;) {
      const n = Number(c.symbols.read(fd, buf, BigInt(buf.length)));
      if (n < 0) return null;
      if (n === 0) break;
      chunks.push(buf.slice(0, n));
      if (n === buf.length && buf.length < (1 << 20)) buf = new Uint8Array(buf.length * 2);
    }
    const all = new Uint8Array(chunks.reduce((s, b) => s + b.length, 0));
    let at = 0;
    for (const b of chunks) all.set(b, at), at += b.length;
    return new TextDecoder().decode(all);
  } finally {
    c.symbols.close(fd);
  }
}
