/**
 * The primary's COLO Worker's book of its guest's output records (the main thread forwards
 * every one, colo_output.ts): what the secondary must get so that every record a client
 * received from the primary is in the secondary's output too, equal (docs/wire-format.md,
 * COLO_RECORDS).
 *
 * - A checkpoint releases the primary's held records below the guest's next seq then, also the
 *   ones the secondary's guest never wrote (it was behind) or wrote differently; its guest then
 *   goes on from that seq and never writes them. So each checkpoint carries the records written
 *   since the last one, except those the secondary already wrote equal (its digest, from after
 *   the last checkpoint, matched): they are applied with the checkpoint, before VMSTATE_LOADED,
 *   and only after VMSTATE_LOADED does the primary release them.
 * - Records the primary released before COLO began (its output's backlog, and any that reach
 *   the main thread late) are below the first checkpoint's range: they go between checkpoints.
 *
 * Records come from the main thread in seq order (one sender, one port). Pure: no I/O, no time.
 *
 * @module
 */
import { type ColoRecord, MAX_COLO_RECORD_BYTES, MAX_COLO_RECORDS } from "../wire/mod.ts";

/** A record as the main thread forwards it: `digest` (hex SHA-256 of its bytes) when compared. */
export interface ForwardedRecord extends ColoRecord {
  digest?: string;
}

/** How long a checkpoint waits for the records its guest wrote to come from the main thread. */
export const RECORDS_WAIT_MS = 5000;

interface Pending {
  record: ColoRecord;
  digest?: string;
}

/** The book (see the module doc). */
export class ColoRecordBook {
  /** The first seq the next checkpoint covers: the guest's next seq at the last one (or entry). */
  #lo: number;
  /** The seq the next forwarded record must have. */
  #expect: number;
  /** Records from `#lo` on that the secondary has not shown it wrote equal, ascending. */
  readonly #pending = new Map<number, Pending>();
  #pendingBytes = 0;
  /** The secondary's digests (hex) not matched yet, with the checkpoints loaded before them. */
  readonly #theirs = new Map<number, { digest: string; epoch: number }>();
  /** Checkpoints taken: a secondary's digest from before the last one is of a replaced guest. */
  #epoch = 0;
  /** Records below `#lo` to send between checkpoints, ascending. */
  #released: ColoRecord[] = [];
  #fault: string | null = null;

  /** A book for a guest whose next output seq is `next` as COLO begins. */
  constructor(next: number) {
    this.#lo = next;
    this.#expect = next;
  }

  /** The first seq the next checkpoint covers. */
  get lo(): number {
    return this.#lo;
  }

  /** So many records wait that a checkpoint should come now (half a frame's caps). */
  get due(): boolean {
    return this.#pending.size >= MAX_COLO_RECORDS / 2 ||
      this.#pendingBytes >= MAX_COLO_RECORD_BYTES / 2;
  }

  /** Records of the primary's guest, oldest first (the backlog at COLO's start, or one new one). */
  primary(records: readonly ForwardedRecord[]): void {
    for (const r of records) this.#one(r);
  }

  /** The secondary's record `seq` (hex `digest`), read after `epoch` checkpoints were loaded. */
  secondary(seq: number, digest: string, epoch: number): void {
    if (epoch < this.#epoch || seq < this.#lo) return;
    const mine = this.#pending.get(seq);
    if (mine && epoch === this.#epoch) {
      if (mine.digest === digest) this.#drop(seq);
      return; // different: the primary's goes with the checkpoint
    }
    this.#theirs.set(seq, { digest, epoch });
  }

  /** Records below {@link lo} to send now, at most one frame's worth (and forgets them). */
  takeReleased(): ColoRecord[] {
    let n = 0;
    let bytes = 0;
    while (n < this.#released.length && n < MAX_COLO_RECORDS) {
      bytes += this.#released[n].bytes.length;
      if (bytes > MAX_COLO_RECORD_BYTES && n > 0) break;
      n++;
    }
    return this.#released.splice(0, n);
  }

  /** Null when every record below `next` came; else what is missing. */
  missing(next: number): string | null {
    if (this.#fault) return this.#fault;
    if (this.#expect >= next) return null;
    return `records ${this.#expect} to ${next - 1} have not come`;
  }

  /**
   * The checkpoint at `next` (the guest's next seq, its vCPU stopped, {@link missing} null):
   * the records it carries, ascending; the next checkpoint starts at `next`. Throws when they
   * are more than one frame carries.
   */
  take(next: number): ColoRecord[] {
    const out: ColoRecord[] = [];
    let bytes = 0;
    for (const [seq, p] of this.#pending) {
      if (seq >= next) break;
      out.push(p.record);
      bytes += p.record.bytes.length;
    }
    if (out.length > MAX_COLO_RECORDS || bytes > MAX_COLO_RECORD_BYTES) {
      throw new Error(
        `${out.length} output records (${bytes} bytes) since the last checkpoint: more than ` +
          `one checkpoint carries (${MAX_COLO_RECORDS} records, ${MAX_COLO_RECORD_BYTES} bytes)`,
      );
    }
    for (const r of out) this.#drop(r.seq);
    this.#lo = next;
    this.#expect = Math.max(this.#expect, next);
    this.#epoch++;
    for (const [seq, t] of this.#theirs) {
      if (seq < next || t.epoch < this.#epoch) this.#theirs.delete(seq);
    }
    return out;
  }

  #one(r: ForwardedRecord): void {
    const record: ColoRecord = { seq: r.seq, stream: r.stream, bytes: r.bytes };
    if (r.seq < this.#lo) {
      this.#release(record);
      return;
    }
    if (r.seq !== this.#expect) {
      this.#fault ??= `output record ${r.seq} came where ${this.#expect} was expected`;
      return;
    }
    this.#expect++;
    const theirs = this.#theirs.get(r.seq);
    if (theirs) {
      this.#theirs.delete(r.seq);
      if (theirs.epoch === this.#epoch && r.digest === theirs.digest) return;
    }
    this.#pending.set(r.seq, { record, digest: r.digest });
    this.#pendingBytes += r.bytes.length;
  }

  /** Keeps a record below `#lo` for {@link takeReleased}, in seq order, once. */
  #release(r: ColoRecord): void {
    const list = this.#released;
    let i = list.length;
    while (i > 0 && list[i - 1].seq > r.seq) i--;
    if (i > 0 && list[i - 1].seq === r.seq) list[i - 1] = r;
    else list.splice(i, 0, r);
  }

  #drop(seq: number): void {
    const p = this.#pending.get(seq);
    if (!p) return;
    this.#pending.delete(seq);
    this.#pendingBytes -= p.record.bytes.length;
  }
}
