/**
 * Checks of a peer's frames against the receiver's own state: runs against the RAM layout
 * (before anything is written to guest memory), the CONFIG against the local configuration,
 * and section nesting.
 *
 * @module
 */

import type { RamBlockLayout } from "../../adapters/memory/layout.ts";
import type { WireConfig } from "./decode.ts";
import type { WireSection } from "./sections.ts";
import { WireError } from "./wire_error.ts";

const KIND_NAMES: Readonly<Record<number, string>> = { 1: "setup", 2: "iterate", 3: "complete" };

/** Describes a section record as `iterate pass 4 of section 1` for error messages. */
export function describeSection(s: WireSection): string {
  return `${KIND_NAMES[s.kind] ?? `kind ${s.kind}`} pass ${s.pass} of section ${s.id}`;
}

/**
 * Throws {@link WireError} unless pages `[firstPage, firstPage + count)` lie inside block
 * `block` of the receiver's layout and `count` is at least 1.
 */
export function checkRun(
  layout: readonly Pick<RamBlockLayout, "name" | "pages">[],
  block: number,
  firstPage: number,
  count: number,
): void {
  if (block >= layout.length) {
    throw new WireError(`RAM block index ${block} out of range (${layout.length} blocks)`);
  }
  if (count < 1) throw new WireError(`run with a page count of ${count}`);
  const blk = layout[block];
  // Plain JS numbers: u32 + u32 cannot wrap, so an "overflowing" run is simply too long.
  if (firstPage + count > blk.pages) {
    throw new WireError(
      `run of ${count} pages at page ${firstPage} goes past the end of RAM block ` +
        `'${blk.name}' (${blk.pages} pages)`,
    );
  }
}

/**
 * Compares the source's CONFIG with the local RAM layout and page size. Block order must
 * match (runs address blocks by index). Throws {@link WireError} naming the first difference.
 */
export function checkConfig(
  local: readonly Pick<RamBlockLayout, "name" | "size">[],
  pageSize: number,
  remote: WireConfig,
): void {
  const prefix = "Configuration mismatch:";
  if (remote.pageSize !== pageSize) {
    throw new WireError(`${prefix} page size ${remote.pageSize} on the source, ${pageSize} here`);
  }
  if (remote.blocks.length !== local.length) {
    throw new WireError(
      `${prefix} block count ${remote.blocks.length} on the source, ${local.length} here`,
    );
  }
  remote.blocks.forEach((rb, i) => {
    const j = local.findIndex((lb) => lb.name === rb.name);
    if (j < 0) throw new WireError(`${prefix} unknown RAM block '${rb.name}'`);
    if (j !== i) {
      throw new WireError(
        `${prefix} RAM block '${rb.name}' is block ${i} on the source, ${j} here`,
      );
    }
    if (local[j].size !== rb.size) {
      throw new WireError(
        `${prefix} RAM block '${rb.name}' is ${rb.size} bytes on the source, ${local[j].size} here`,
      );
    }
  });
}

/** Throws {@link WireError} if a SECTION_START arrives while another section is open. */
export function checkSectionStart(open: WireSection | null, start: WireSection): void {
  if (open !== null) {
    throw new WireError(
      `section (${describeSection(start)}) started while section (${describeSection(open)}) ` +
        `is still open`,
    );
  }
}

/** Throws {@link WireError} unless a SECTION_END matches the open record's kind, pass and id. */
export function checkSectionEnd(open: WireSection | null, end: WireSection): void {
  if (open === null) {
    throw new WireError(`section end (${describeSection(end)}) without an open section`);
  }
  if (open.kind !== end.kind || open.pass !== end.pass || open.id !== end.id) {
    throw new WireError(
      `section end (${describeSection(end)}) does not match the open section ` +
        `(${describeSection(open)})`,
    );
  }
}
