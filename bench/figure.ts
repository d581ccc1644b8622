/**
 * One row of the bench's table, and the informational kind (a value with no baseline and no
 * target). Its own module so that figure makers (rss.ts) need not import the report.
 *
 * @module
 */

/** One row of the table. */
export interface Figure {
  id: string;
  figure: string;
  value: number;
  unit: string;
  baseline: number | null;
  baselineName: string | null;
  /** value / baseline (for A: the median of the per-repetition ratios). */
  ratio: number | null;
  /** Human form of the target, or null for an informational row. */
  target: string | null;
  pass: boolean | null;
}

/** An informational row: a value with no baseline and no target. */
export function infoFigure(id: string, figure: string, value: number, unit: string): Figure {
  return {
    id,
    figure,
    value,
    unit,
    baseline: null,
    baselineName: null,
    ratio: null,
    target: null,
    pass: null,
  };
}
