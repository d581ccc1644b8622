/**
 * The guest's output records (`GET /machine/output`): one per write the guest made, numbered
 * by the guest (`seq` from 1 over its whole life, across migrations), kept in a bounded
 * backlog so a client reconnecting with `Last-Event-ID` gets what it missed.
 *
 * @module
 */

/** One output record as the contract shows it. */
export interface OutputRecord {
  seq: number;
  stream: "stdout" | "stderr";
  text?: string;
  base64?: string;
}

/** Records kept for late or reconnecting readers. */
export const OUTPUT_BACKLOG_RECORDS = 100_000;
/** Bytes of record payload kept. */
export const OUTPUT_BACKLOG_BYTES = 16 << 20;

const strict = new TextDecoder("utf-8", { fatal: true });

function toBase64(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i += 0x8000) {
    s += String.fromCharCode(...b.subarray(i, i + 0x8000));
  }
  return btoa(s);
}

/** A record's payload size as the backlog counts it. */
function size(r: OutputRecord): number {
  return (r.text ?? r.base64 ?? "").length;
}

/** Builds a record: text when the bytes are UTF-8, else base64. */
export function makeRecord(
  seq: number,
  stream: "stdout" | "stderr",
  bytes: Uint8Array,
): OutputRecord {
  try {
    return { seq, stream, text: strict.decode(bytes) };
  } catch {
    return { seq, stream, base64: toBase64(bytes) };
  }
}

/** The backlog and its live subscribers. */
export class OutputLog {
  readonly #records: OutputRecord[] = [];
  #bytes = 0;
  readonly #subscribers = new Set<(r: OutputRecord) => void>();
  /** While held (a COLO secondary), clients see records up to this seq only. */
  #shownUpTo: number | null = null;

  /** Appends a record and hands it to every subscriber (unless held). */
  append(r: OutputRecord): void {
    this.#records.push(r);
    this.#bytes += size(r);
    this.#trim();
    if (this.#shownUpTo === null) { for (const s of this.#subscribers) s(r); }
  }

  /**
   * COLO secondary: records from now on are kept but not shown to clients (neither live nor
   * in `shown`) until {@link release}: while COLO runs only the primary releases output, as
   * QEMU's secondary's packets never leave it.
   */
  hold(): void {
    if (this.#shownUpTo === null) this.#shownUpTo = this.lastSeq;
  }

  /** The guest runs on alone here: clients get what was held (as it is now), in order. */
  release(): void {
    const from = this.#shownUpTo;
    if (from === null) return;
    this.#shownUpTo = null;
    for (const r of this.since(from)) for (const s of this.#subscribers) s(r);
  }

  /** What clients may read: records with seq > `after`, up to what is released. */
  shown(after: number): OutputRecord[] {
    const upTo = this.#shownUpTo ?? Infinity;
    return this.#records.filter((r) => r.seq > after && r.seq <= upTo);
  }

  /**
   * Puts `records` (ascending seq) in seq order, each in place of a kept record with its seq
   * (COLO: the primary's versions). Subscribers get those past the newest record kept before.
   */
  merge(records: readonly OutputRecord[]): void {
    if (records.length === 0) return;
    const last = this.lastSeq;
    const kept = this.#records;
    let i = kept.length;
    while (i > 0 && kept[i - 1].seq >= records[0].seq) i--;
    const tail = kept.splice(i);
    let t = 0;
    for (const r of records) {
      while (t < tail.length && tail[t].seq < r.seq) kept.push(tail[t++]);
      if (t < tail.length && tail[t].seq === r.seq) this.#bytes -= size(tail[t++]);
      kept.push(r);
      this.#bytes += size(r);
    }
    while (t < tail.length) kept.push(tail[t++]);
    this.#trim();
    if (this.#shownUpTo !== null) return;
    for (const r of records) {
      if (r.seq > last) { for (const s of this.#subscribers) s(r); }
    }
  }

  /** Forgets the records from `seq` on (a guest that wrote them was replaced; COLO). */
  rollback(seq: number): void {
    while (this.#records.length > 0 && this.#records[this.#records.length - 1].seq >= seq) {
      this.#bytes -= size(this.#records.pop()!);
    }
  }

  /** Drops the oldest records beyond the backlog's bounds. */
  #trim(): void {
    while (
      this.#records.length > OUTPUT_BACKLOG_RECORDS ||
      (this.#bytes > OUTPUT_BACKLOG_BYTES && this.#records.length > 1)
    ) {
      this.#bytes -= size(this.#records.shift()!);
    }
  }

  /** The newest record's seq, or 0. */
  get lastSeq(): number {
    return this.#records.at(-1)?.seq ?? 0;
  }

  /** Records kept with seq > `after`, oldest first. */
  since(after: number): OutputRecord[] {
    return this.#records.filter((r) => r.seq > after);
  }

  /** Calls `f` with every new record until the returned function is called. */
  subscribe(f: (r: OutputRecord) => void): () => void {
    this.#subscribers.add(f);
    return () => this.#subscribers.delete(f);
  }
}
