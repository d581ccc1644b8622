/**
 * What the kernel says about a buffer's memory, for the memory tests: its resident bytes
 * (mincore(2)) and the flags of the mappings that hold it (/proc/self/smaps VmFlags), read
 * independently of the product's own smaps reader.
 *
 * @module
 */

/** The address of `buf`'s first byte. */
export function addressOf(buf: SharedArrayBuffer | ArrayBuffer): bigint {
  return Deno.UnsafePointer.value(Deno.UnsafePointer.of(new Uint8Array(buf))) as bigint;
}

/**
 * Bytes of `buf` resident in RAM right now (mincore(2) over its pages, through FFI): unlike the
 * process's RSS, other test modules running in parallel cannot move it. With `offset` and
 * `length`, of those bytes only (the pages they touch).
 */
export function residentBytes(
  buf: SharedArrayBuffer,
  offset = 0,
  length = buf.byteLength - offset,
): number {
  const libc = Deno.dlopen("libc.so.6", {
    mincore: { parameters: ["pointer", "usize", "buffer"], result: "i32" },
  });
  try {
    const addr = addressOf(buf) + BigInt(offset);
    const page = 4096n;
    const start = addr & ~(page - 1n);
    const end = (addr + BigInt(length) + page - 1n) & ~(page - 1n);
    const vec = new Uint8Array(Number((end - start) / page));
    const rc = libc.symbols.mincore(Deno.UnsafePointer.create(start), end - start, vec);
    if (rc !== 0) throw new Error(`mincore failed (${rc})`);
    return vec.reduce((n, v) => n + (v & 1), 0) * 4096;
  } finally {
    libc.close();
  }
}

/** One mapping of /proc/self/smaps. */
export interface Mapping {
  start: bigint;
  end: bigint;
  /** The VmFlags words (`hg`: MADV_HUGEPAGE, `nh`: MADV_NOHUGEPAGE). */
  flags: string[];
  anonHugeKiB: number;
}

/** Every mapping of this process that overlaps `buf`. */
export function mappingsOf(buf: SharedArrayBuffer | ArrayBuffer): Mapping[] {
  const lo = addressOf(buf);
  const hi = lo + BigInt(buf.byteLength);
  const out: Mapping[] = [];
  for (const block of Deno.readTextFileSync("/proc/self/smaps").split(/\n(?=[0-9a-f]+-)/)) {
    const m = /^([0-9a-f]+)-([0-9a-f]+) /.exec(block);
    if (!m) continue;
    const [start, end] = [BigInt("0x" + m[1]), BigInt("0x" + m[2])];
    if (end <= lo || start >= hi) continue;
    out.push({
      start,
      end,
      flags: (/VmFlags:(.*)/.exec(block)?.[1] ?? "").trim().split(/\s+/),
      anonHugeKiB: Number(/AnonHugePages:\s+(\d+)/.exec(block)?.[1] ?? 0),
    });
  }
  return out;
}
