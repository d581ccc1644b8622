/**
 * release-ram: hands guest pages that already went to the destination back to the
 * operating system (QEMU's ram_discard_range: madvise(MADV_DONTNEED)), through Deno's FFI.
 * A released page reads as zeros afterwards. A SharedArrayBuffer's data need not start on
 * a page boundary, so only the OS pages wholly inside a range are released.
 *
 * @module
 */

const MADV_DONTNEED = 4;
const OS_PAGE = 4096n;

type Libc = { symbols: { madvise(p: Deno.PointerValue, len: bigint, advice: number): number } };
let libc: Libc | null | undefined;

function open(): Libc | null {
  if (libc !== undefined) return libc;
  try {
    if (Deno.build.os !== "linux") throw new Error("not Linux");
    libc = Deno.dlopen("libc.so.6", {
      madvise: { parameters: ["pointer", "usize", "i32"], result: "i32" },
    }) as unknown as Libc;
  } catch {
    libc = null;
  }
  return libc;
}

/** Why release-ram cannot work in this process, or null when it can. */
export function releaseRamUnavailable(): string | null {
  if (Deno.build.os !== "linux") return "needs Linux (madvise)";
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") {
    return "needs --allow-ffi to return pages to the operating system";
  }
  return open() ? null : "could not load libc for madvise";
}

/** Releases bytes [offset, offset + length) of `ram` (whole OS pages only); returns bytes freed. */
export function releaseRange(ram: SharedArrayBuffer, offset: number, length: number): number {
  const c = open();
  if (!c || length <= 0) return 0;
  const base = Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(ram))) as bigint;
  const start = (base + BigInt(offset) + OS_PAGE - 1n) & ~(OS_PAGE - 1n);
  const end = (base + BigInt(offset + length)) & ~(OS_PAGE - 1n);
  if (end <= start) return 0;
  return c.symbols.madvise(Deno.UnsafePointer.create(start), end - start, MADV_DONTNEED) === 0
    ? Number(end - start)
    : 0;
}
