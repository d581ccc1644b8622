/**
 * COLO's output compare on the primary (QEMU's colo-compare, for guest output records instead
 * of packets): each record the primary's guest writes is held, not released to clients, until
 * the secondary's record with the same sequence number arrives. Equal digests → released, in
 * sequence order. A checkpoint is due at once when the digests differ, when the oldest held
 * record has waited longer than the compare timeout, or when the hold queue (or the
 * secondary's records waiting for the primary's) is full; after that checkpoint both guests
 * are the same again, and every held record written before it is released.
 *
 * Pure: time comes in as `now` (ms), records are opaque; the caller (colo_output.ts) feeds it
 * from the machine's output and the primary's COLO Worker.
 *
 * @module
 */

/** QEMU's colo-compare default `compare_timeout` (ms). */
export const COMPARE_TIMEOUT_MS = 3000;
/** Records held at most before a checkpoint is due (QEMU's colo-compare queue: 1024 packets). */
export const COMPARE_QUEUE_RECORDS = 1024;

/** Why a checkpoint is due. */
export type CompareTrigger = "mismatch" | "timeout" | "full";

/** The compare's counters (`x-colo` in `GET /migrations/current`). */
export interface CompareCounters {
  /** Record pairs compared. */
  compared: number;
  /** Of them, pairs whose bytes differed. */
  mismatched: number;
  /** Primary records held now. */
  held: number;
}

/** What an OutputCompare calls. */
export interface CompareSinks<R> {
  /** Hands a record to clients (called in sequence order). */
  release(record: R): void;
  /** A checkpoint is due now (called once until `checkpointed`). */
  trigger(why: CompareTrigger): void;
}

interface Held<R> {
  seq: number;
  digest: string;
  record: R;
  /** When it was held (ms). */
  since: number;
  /** Equal to the secondary's, or null while the secondary's has not come. */
  equal: boolean | null;
}

/** The primary's hold queue (see the module doc). */
export class OutputCompare<R> {
  readonly #sinks: CompareSinks<R>;
  readonly #timeoutMs: number;
  readonly #capacity: number;
  readonly #held: Held<R>[] = [];
  /** The secondary's digests that came before the primary's record, by seq, with their epoch. */
  readonly #early = new Map<number, { digest: string; epoch: number }>();
  /** Checkpoints taken: a secondary's record from an earlier one is stale. */
  #epoch = 0;
  /** Records below this seq are settled: the primary's are released at once, the secondary's ignored. */
  #floor = 1;
  #due = false;
  #compared = 0;
  #mismatched = 0;

  /** A compare with `timeoutMs` (QEMU's compare_timeout) and room for `capacity` records. */
  constructor(
    sinks: CompareSinks<R>,
    timeoutMs = COMPARE_TIMEOUT_MS,
    capacity = COMPARE_QUEUE_RECORDS,
  ) {
    this.#sinks = sinks;
    this.#timeoutMs = timeoutMs;
    this.#capacity = capacity;
  }

  /** The counters now. */
  get counters(): CompareCounters {
    return { compared: this.#compared, mismatched: this.#mismatched, held: this.#held.length };
  }

  /** A checkpoint was asked for and has not been taken yet. */
  get due(): boolean {
    return this.#due;
  }

  /** The primary's record `seq` (its bytes' `digest`), written at `now`. */
  primary(seq: number, digest: string, record: R, now: number): void {
    if (seq < this.#floor) {
      this.#sinks.release(record); // written before the last checkpoint: both sides have it
      return;
    }
    const h: Held<R> = { seq, digest, record, since: now, equal: null };
    const theirs = this.#early.get(seq);
    if (theirs !== undefined) {
      this.#early.delete(seq);
      if (theirs.epoch >= this.#epoch) this.#compare(h, theirs.digest);
    }
    this.#held.push(h);
    this.#release();
    if (this.#held.length > this.#capacity) this.#trigger("full");
  }

  /**
   * The secondary's record `seq` (its bytes' `digest`), written by its guest after checkpoint
   * `epoch` (one from before the last checkpoint is ignored: that guest was replaced).
   */
  secondary(seq: number, digest: string, epoch = this.#epoch): void {
    if (epoch < this.#epoch || seq < this.#floor) return;
    const h = this.#held.find((x) => x.seq === seq);
    if (h) {
      if (h.equal === null) this.#compare(h, digest);
      this.#release();
      return;
    }
    this.#early.set(seq, { digest, epoch });
    if (this.#early.size > this.#capacity) this.#trigger("full");
  }

  /** The compare timeout: the oldest held record waited too long for the secondary's. */
  tick(now: number): void {
    const head = this.#held[0];
    if (head && now - head.since > this.#timeoutMs) this.#trigger("timeout");
  }

  /**
   * Checkpoint `epoch` was taken; the guest's next record then was `nextSeq` (null: unknown,
   * then every record held now): every held record before it is released (both guests are
   * the same again), the secondary's records from before it are forgotten (its guest was
   * replaced), and a record before it that comes later is released at once.
   */
  checkpointed(nextSeq: number | null, epoch = this.#epoch + 1): void {
    this.#due = false;
    this.#epoch = Math.max(this.#epoch, epoch);
    const next = nextSeq ?? (this.#held.at(-1)?.seq ?? this.#floor - 1) + 1;
    this.#floor = Math.max(this.#floor, next);
    for (const [seq, e] of this.#early) if (e.epoch < this.#epoch) this.#early.delete(seq);
    while (this.#held.length > 0 && this.#held[0].seq < this.#floor) {
      this.#sinks.release(this.#held.shift()!.record);
    }
    this.#release();
  }

  /** Leaving COLO: the held records, oldest first, to release (this side runs on) or drop. */
  drain(): R[] {
    const out = this.#held.splice(0).map((h) => h.record);
    this.#early.clear();
    this.#due = false;
    return out;
  }

  #compare(h: Held<R>, theirs: string): void {
    this.#compared++;
    h.equal = h.digest === theirs;
    if (!h.equal) {
      this.#mismatched++;
      this.#trigger("mismatch");
    }
  }

  /** Releases the equal records at the head of the queue. */
  #release(): void {
    while (this.#held.length > 0 && this.#held[0].equal === true) {
      const h = this.#held.shift()!;
      this.#floor = Math.max(this.#floor, h.seq + 1);
      this.#sinks.release(h.record);
    }
  }

  #trigger(why: CompareTrigger): void {
    if (this.#due) return;
    this.#due = true;
    this.#sinks.trigger(why);
  }
}
