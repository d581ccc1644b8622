/**
 * Counts by label set, kept in a plain map until a scrape reads them (so that prom-client
 * need not be loaded to count).
 *
 * @module
 */

/** Counts by label set, kept until (and read at) a scrape. */
export class LabelCounts<L extends string> {
  readonly #counts = new Map<string, { labels: Record<L, string>; n: number }>();

  /** Adds one to the count of `labels`. */
  inc(labels: Record<L, string>): void {
    const key = JSON.stringify(labels);
    const c = this.#counts.get(key);
    if (c) c.n++;
    else this.#counts.set(key, { labels, n: 1 });
  }

  /** Every label set counted so far, with its count. */
  entries(): Iterable<{ labels: Record<L, string>; n: number }> {
    return this.#counts.values();
  }
}
