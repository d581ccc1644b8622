/**
 * migration-test's check of the `increment` workload: scanning [start, end) in order, every
 * page's first byte equals its predecessor's or is one less (mod 256), with at most one step.
 *
 * @module
 */

import { blockIndexOfPage, PAGE_SIZE, type RamBlockLayout } from "./layout.ts";

/** Result of the increment check (`x-increment-check` in the digest). */
export interface IncrementCheck {
  ok: boolean;
  /** Places where a page's first byte is one less than its predecessor's. */
  steps: number;
  start: number;
  end: number;
}

/** Runs the check over [start, end) of the flat address space (page-aligned). */
export function incrementCheck(
  layout: readonly RamBlockLayout[],
  ram: readonly Uint8Array[],
  start: number,
  end: number,
): IncrementCheck {
  let steps = 0;
  let bad = false;
  let prev = -1;
  for (let page = start / PAGE_SIZE; page < end / PAGE_SIZE; page++) {
    const bi = blockIndexOfPage(layout, page);
    if (bi < 0) {
      bad = true;
      break;
    }
    const b = ram[bi][(page - layout[bi].firstPage) * PAGE_SIZE];
    if (prev >= 0 && b !== prev) {
      if (((b + 1) & 255) === prev) steps++;
      else bad = true;
    }
    prev = b;
  }
  return { ok: !bad && steps <= 1, steps, start, end };
}
