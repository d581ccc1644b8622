/**
 * The guest's RAM layout: named blocks of whole target pages.
 *
 * @module
 */

/** Target page size in bytes (QEMU's `qemu_target_page_size()` on x86). */
export const PAGE_SIZE = 4096;

/** One RAM block as configured: its name (`pc.ram`) and size in bytes, a multiple of PAGE_SIZE. */
export interface RamBlockSpec {
  name: string;
  size: number;
}

/** A RAM block placed in the guest's flat page space: pages [firstPage, firstPage + pages). */
export interface RamBlockLayout extends RamBlockSpec {
  /** Index of the block's first page in the guest-wide page numbering. */
  firstPage: number;
  /** Number of pages in the block (size / PAGE_SIZE). */
  pages: number;
}

/** Places blocks one after another in the guest-wide page numbering. */
export function layoutBlocks(specs: readonly RamBlockSpec[]): RamBlockLayout[] {
  let firstPage = 0;
  return specs.map((spec) => {
    const pages = spec.size / PAGE_SIZE;
    const block = { ...spec, firstPage, pages };
    firstPage += pages;
    return block;
  });
}

/** Number of pages in the guest's flat page space. */
export function totalPages(layout: readonly RamBlockLayout[]): number {
  return layout.reduce((n, block) => n + block.pages, 0);
}

/** Size in bytes of a one-byte-per-page map (dirty log, received map): pages rounded up to 8. */
export function pageMapBytes(pages: number): number {
  return Math.ceil(pages / 8) * 8;
}

/** Index in `layout` of the block holding flat page `page`, or -1 when no block holds it. */
export function blockIndexOfPage(layout: readonly RamBlockLayout[], page: number): number {
  for (let i = 0; i < layout.length; i++) {
    const block = layout[i];
    if (page >= block.firstPage && page < block.firstPage + block.pages) return i;
  }
  return -1;
}

/**
 * Checks configured blocks: at least one, names non-empty and unique, sizes positive whole
 * multiples of PAGE_SIZE. Throws a RangeError naming the offending block.
 */
export function validateBlockSpecs(specs: readonly RamBlockSpec[]): void {
  if (specs.length === 0) throw new RangeError("RAM layout: at least one RAM block is needed");
  const seen = new Set<string>();
  for (const { name, size } of specs) {
    if (name === "") throw new RangeError("RAM layout: a RAM block needs a name");
    if (seen.has(name)) throw new RangeError(`RAM layout: duplicate RAM block name '${name}'`);
    seen.add(name);
    if (!Number.isSafeInteger(size) || size <= 0 || size % PAGE_SIZE !== 0) {
      throw new RangeError(
        `RAM layout: block '${name}' size ${size} is not a positive multiple of ${PAGE_SIZE}`,
      );
    }
  }
}
