/**
 * What a WebAssembly guest's memory that starts small and grows costs, against one allocated
 * at the cap from the start (the decision is written in adapters/wasm/wasm_shared.ts):
 *
 * - `create`: making the shared memory (initial 1 page vs the cap) and its resident bytes;
 * - `grow`: growing 64 KiB → cap the way the sample guests' allocator does (an eighth of the
 *   size, at most 16 MiB, per memory.grow), then touching every page;
 * - `scan`: the source's zero-page check (Uint32Array reads) over the whole memory through a
 *   view of a fixed buffer, of the growable buffer made without a length (length-tracking), and
 *   of the growable buffer with its length now (sized);
 * - `copy`: copying 1 MiB runs out of it (the page sender's subarray + set).
 *
 * `deno run -A bench/wasm_memory_grow.ts [MiB]` (default 256). Prints one JSON line per case.
 *
 * @module
 */

const mib = Number(Deno.args[0] ?? 256);
const cap = (mib << 20) / 65536;

function rss(): number {
  return Deno.memoryUsage().rss;
}

function best(runs: number, f: () => void): number {
  let b = Infinity;
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    f();
    b = Math.min(b, performance.now() - t);
  }
  return b;
}

function scan(words: Uint32Array): number {
  let nz = 0;
  for (let p = 0; p < words.length; p += 1024) {
    for (let i = p; i < p + 1024; i++) {
      if (words[i] !== 0) {
        nz++;
        break;
      }
    }
  }
  return nz;
}

function copy(src: Uint8Array, dst: Uint8Array): void {
  for (let off = 0; off + dst.length <= src.length; off += dst.length) {
    dst.set(src.subarray(off, off + dst.length));
  }
}

const r0 = rss();
let t = performance.now();
const full = new WebAssembly.Memory({ initial: cap, maximum: cap, shared: true });
const createFull = performance.now() - t;
const rFull = rss() - r0;
t = performance.now();
const small = new WebAssembly.Memory({ initial: 1, maximum: cap, shared: true });
const createSmall = performance.now() - t;
const rSmall = rss() - r0 - rFull;
console.log(JSON.stringify({
  case: "create",
  mib,
  "full-ms": +createFull.toFixed(3),
  "small-ms": +createSmall.toFixed(3),
  "full-rss-kib": rFull >> 10,
  "small-rss-kib": rSmall >> 10,
}));

t = performance.now();
let grows = 0;
while (small.buffer.byteLength < cap * 65536) {
  const size = small.buffer.byteLength / 65536;
  small.grow(Math.min(Math.max(1, Math.min(size >> 3, 256)), cap - size));
  grows++;
}
const growMs = performance.now() - t;
const touch = (m: WebAssembly.Memory) => {
  const u8 = new Uint8Array(m.buffer);
  for (let off = 0; off < u8.length; off += 4096) u8[off] = 1;
};
t = performance.now();
touch(small);
const touchSmall = performance.now() - t;
t = performance.now();
touch(full);
const touchFull = performance.now() - t;
console.log(JSON.stringify({
  case: "grow",
  grows,
  "grow-ms": +growMs.toFixed(2),
  "touch-grown-ms": +touchSmall.toFixed(1),
  "touch-full-ms": +touchFull.toFixed(1),
}));

const growable = (small as unknown as { toResizableBuffer(): SharedArrayBuffer })
  .toResizableBuffer();
const fixedWords = new Uint32Array(full.buffer);
const trackingWords = new Uint32Array(growable);
new Uint8Array(full.buffer).fill(0);
new Uint8Array(growable).fill(0);
const sizedWords = new Uint32Array(growable, 0, growable.byteLength / 4);
console.log(JSON.stringify({
  case: "scan",
  "fixed-ms": +best(5, () => scan(fixedWords)).toFixed(1),
  "growable-tracking-ms": +best(5, () => scan(trackingWords)).toFixed(1),
  "growable-sized-ms": +best(5, () => scan(sizedWords)).toFixed(1),
}));
const out = new Uint8Array(1 << 20);
console.log(JSON.stringify({
  case: "copy",
  "fixed-ms": +best(5, () => copy(new Uint8Array(full.buffer), out)).toFixed(1),
  "growable-ms": +best(5, () => copy(new Uint8Array(growable), out)).toFixed(1),
}));
