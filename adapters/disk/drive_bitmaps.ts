/**
 * A drive's named dirty bitmaps (QEMU's block-dirty-bitmap-add/-remove, `dirty-bitmaps` in
 * query-block): each records the 64 KiB blocks the guest wrote since the bitmap was made. They
 * live on one SharedArrayBuffer per drive, so the vCPU Worker marks them as it writes and a
 * destination's data path can make the ones that arrive:
 *
 * - `MAX_BITMAPS` slots of metadata, `SLOT_META` bytes each: an Int32 state (0 free, 1 being
 *   made, 2 in use), a u32 name length, the name (at most `MAX_BITMAP_NAME` bytes of
 *   printable ASCII);
 * - then per slot one byte per block (1 = written since the bitmap was made).
 *
 * A slot is claimed by compare-and-set (free → being made), cleared, named, then published (in
 * use): a writer marks only published slots.
 *
 * @module
 */

/** Most bitmaps a drive has. */
export const MAX_BITMAPS = 8;
/** Longest bitmap name (bytes). */
export const MAX_BITMAP_NAME = 64;
/** A valid bitmap name: printable ASCII without spaces. */
export const BITMAP_NAME = /^[\x21-\x7e]{1,64}$/;

const SLOT_META = 8 + MAX_BITMAP_NAME;
const META = MAX_BITMAPS * SLOT_META;
const FREE = 0;
const MAKING = 1;
const IN_USE = 2;

/** The SharedArrayBuffer of a drive of `blocks` blocks' bitmaps. */
export function bitmapsBuffer(blocks: number): SharedArrayBuffer {
  return new SharedArrayBuffer(META + MAX_BITMAPS * blocks);
}

/** One bitmap as query-block lists it. */
export interface BitmapInfo {
  name: string;
  /** Bytes the bitmap marks dirty (whole blocks, within the drive). */
  count: number;
  /** Bytes one bit (here: one byte) stands for. */
  granularity: number;
}

/** Why a bitmap could not be made. */
export type AddRefusal = "exists" | "full";

/** A view of one drive's bitmaps (see the module doc). */
export class DriveBitmaps {
  readonly #state: Int32Array;
  readonly #bytes: Uint8Array;
  readonly #view: DataView;
  readonly #blocks: number;
  readonly #size: number;
  readonly #block: number;

  /** The bitmaps in `buffer` of a drive of `size` bytes in blocks of `block` bytes. */
  constructor(buffer: SharedArrayBuffer, size: number, block: number) {
    this.#blocks = Math.ceil(size / block);
    this.#size = size;
    this.#block = block;
    this.#state = new Int32Array(buffer, 0, META / 4);
    this.#bytes = new Uint8Array(buffer);
    this.#view = new DataView(buffer);
  }

  /** The published bitmaps, in slot order. */
  list(): BitmapInfo[] {
    const out: BitmapInfo[] = [];
    for (let i = 0; i < MAX_BITMAPS; i++) {
      if (Atomics.load(this.#state, (i * SLOT_META) / 4) !== IN_USE) continue;
      out.push({ name: this.#name(i), count: this.#count(i), granularity: this.#block });
    }
    return out;
  }

  /** Makes bitmap `name`, empty; null when made, else why not. */
  add(name: string): AddRefusal | null {
    if (this.#find(name) >= 0) return "exists";
    const slot = this.#claim(name);
    if (slot < 0) return "full";
    Atomics.store(this.#state, (slot * SLOT_META) / 4, IN_USE);
    return null;
  }

  /** Removes bitmap `name`; false when there is none. */
  remove(name: string): boolean {
    const slot = this.#find(name);
    if (slot < 0) return false;
    Atomics.store(this.#state, (slot * SLOT_META) / 4, FREE);
    return true;
  }

  /** A guest write covered blocks `first..last`: every published bitmap marks them. */
  mark(first: number, last: number): void {
    for (let i = 0; i < MAX_BITMAPS; i++) {
      if (Atomics.load(this.#state, (i * SLOT_META) / 4) !== IN_USE) continue;
      this.#bytes.fill(1, this.#bits(i) + first, this.#bits(i) + last + 1);
    }
  }

  /** Bitmap `name`'s marks (one byte per block, a copy), or null. */
  read(name: string): Uint8Array | null {
    const slot = this.#find(name);
    if (slot < 0) return null;
    return this.#bytes.slice(this.#bits(slot), this.#bits(slot) + this.#blocks);
  }

  /**
   * Makes (or replaces) bitmap `name` with `marks` (one byte per block, as {@link read}
   * gives): a destination receiving the source's bitmap. False when every slot is taken.
   */
  put(name: string, marks: Uint8Array): boolean {
    if (marks.length !== this.#blocks) throw new RangeError("bitmap of another size");
    this.remove(name);
    const slot = this.#claim(name);
    if (slot < 0) return false;
    this.#bytes.set(marks, this.#bits(slot));
    Atomics.store(this.#state, (slot * SLOT_META) / 4, IN_USE);
    return true;
  }

  /** Sets marks `first ..` of bitmap `name` from `marks` (nonzero = marked); false if none. */
  setRun(name: string, first: number, marks: Uint8Array): boolean {
    const slot = this.#find(name);
    if (slot < 0) return false;
    if (first + marks.length > this.#blocks) throw new RangeError("bitmap run outside the drive");
    const at = this.#bits(slot) + first;
    for (let i = 0; i < marks.length; i++) if (marks[i]) this.#bytes[at + i] = 1;
    return true;
  }

  /** Claims a free slot, cleared and named (state: being made); -1 when none is free. */
  #claim(name: string): number {
    if (!BITMAP_NAME.test(name)) throw new RangeError(`bad bitmap name '${name}'`);
    for (let i = 0; i < MAX_BITMAPS; i++) {
      const at = (i * SLOT_META) / 4;
      if (Atomics.compareExchange(this.#state, at, FREE, MAKING) !== FREE) continue;
      this.#bytes.fill(0, this.#bits(i), this.#bits(i) + this.#blocks);
      this.#view.setUint32(i * SLOT_META + 4, name.length);
      for (let k = 0; k < name.length; k++) {
        this.#bytes[i * SLOT_META + 8 + k] = name.charCodeAt(k);
      }
      return i;
    }
    return -1;
  }

  #find(name: string): number {
    for (let i = 0; i < MAX_BITMAPS; i++) {
      if (Atomics.load(this.#state, (i * SLOT_META) / 4) !== IN_USE) continue;
      if (this.#name(i) === name) return i;
    }
    return -1;
  }

  #name(slot: number): string {
    const n = Math.min(this.#view.getUint32(slot * SLOT_META + 4), MAX_BITMAP_NAME);
    const at = slot * SLOT_META + 8;
    return String.fromCharCode(...this.#bytes.subarray(at, at + n));
  }

  #count(slot: number): number {
    let bytes = 0;
    const start = this.#bits(slot);
    for (let b = 0; b < this.#blocks; b++) {
      if (this.#bytes[start + b] === 1) {
        bytes += Math.min(this.#block, this.#size - b * this.#block);
      }
    }
    return bytes;
  }

  #bits(slot: number): number {
    return META + slot * this.#blocks;
  }
}
