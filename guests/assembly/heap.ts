// The sample guests' allocator: blocks in size classes (four per power of two, so at most a
// quarter is lost to rounding), each class a free list, new blocks taken from the top of the
// heap, which grows the linear memory with memory.grow as it fills. When memory.grow fails (at
// the runtime's cap) `alloc` returns 0 and the program decides what to answer: nothing traps.
// AssemblyScript, built by guests/build.ts.

/** Bytes before each block's payload: its class. */
const HEADER: usize = 8;
const CLASSES: u32 = 104;
const freeHeads = memory.data(<i32>CLASSES * 4, 8);
let base: usize = 0;
let top: usize = 0;
let live: usize = 0;

function classOf(size: usize): u32 {
  if (size <= 64) return <u32>((size + 15) >> 4) - 1;
  const k = <u32>(31 - clz(<u32>(size - 1)));
  return 4 + (k - 6) * 4 + <u32>((size - 1 - (<usize>1 << k)) >> (k - 2));
}

function classSize(c: u32): usize {
  if (c < 4) return <usize>(c + 1) << 4;
  const k = 6 + ((c - 4) >> 2);
  return (<usize>1 << k) + ((<usize>((c - 4) & 3) + 1) << (k - 2));
}

/** Takes `n` bytes from the top of the heap, growing the memory; 0 when it cannot. */
function fromTop(n: usize): usize {
  if (base == 0) base = top = (__heap_base + 15) & ~15;
  if (n > 0xffff_0000 - top) return 0;
  const end = top + n;
  const have = <usize>memory.size() << 16;
  if (end > have) {
    const needed = <i32>((end - have + 0xffff) >> 16);
    // Grow by at least an eighth of what there is (fewer, larger steps), else by what is needed.
    const step = max(needed, min(memory.size() >> 3, 256));
    if (memory.grow(step) < 0 && memory.grow(needed) < 0) return 0;
  }
  const p = top;
  top = end;
  return p;
}

/** A block of at least `n` bytes, or 0 when memory is exhausted. */
export function alloc(n: usize): usize {
  if (n > 0x4000_0000) return 0;
  let c = classOf(max<usize>(n + HEADER, 16));
  let p = <usize>load<u32>(freeHeads + (<usize>c << 2));
  if (p != 0) {
    store<u32>(freeHeads + (<usize>c << 2), load<u32>(p + HEADER));
  } else {
    p = fromTop(classSize(c));
    if (p == 0) {
      // The memory is full: a free block of a larger class does, wasting the difference.
      for (c = c + 1; c < CLASSES; c++) {
        p = <usize>load<u32>(freeHeads + (<usize>c << 2));
        if (p != 0) {
          store<u32>(freeHeads + (<usize>c << 2), load<u32>(p + HEADER));
          break;
        }
      }
      if (p == 0) return 0;
    }
  }
  store<u32>(p, c);
  live += classSize(c);
  return p + HEADER;
}

/** Gives back a block `alloc` returned. */
export function free(q: usize): void {
  const p = q - HEADER;
  const c = load<u32>(p);
  live -= classSize(c);
  store<u32>(p + HEADER, load<u32>(freeHeads + (<usize>c << 2)));
  store<u32>(freeHeads + (<usize>c << 2), <u32>p);
}

/** Bytes of the memory the heap has taken (live and free blocks). */
export function heapBytes(): usize {
  return top - base;
}

/** Bytes of the live blocks. */
export function liveBytes(): usize {
  return live;
}
