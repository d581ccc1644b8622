/**
 * COLO's output path on the main thread. On the primary, every record its guest writes goes
 * through the output compare (output_compare.ts) instead of straight to `GET /machine/output`:
 * held until the secondary's record with the same seq arrives (its COLO Worker forwards them),
 * released when equal; a mismatch, a record late by more than the compare timeout or a full
 * queue asks the Worker for a checkpoint now, and the Worker's report of each checkpoint
 * releases what was held. Every record also goes, with its digest, to the Worker, and as COLO
 * begins the output's backlog too (the newest {@link BACKLOG_RECORDS}, {@link BACKLOG_BYTES}):
 * the checkpoints carry what the secondary lacks (colo_records.ts). On the secondary, every
 * record goes to its log and, as a digest, to the primary (through its COLO Worker,
 * RP_COLO_OUTPUT); the primary's records a checkpoint carried take the place of its own when
 * the checkpoint is applied. While the primary holds (its secondary went silent), records the
 * compare finds equal wait too: only a checkpoint that completes proves the secondary is still
 * its secondary (a healed partition brings digests the secondary sent before it ran alone).
 * Leaving COLO: a primary that runs on releases what it held; one that stopped (the secondary
 * runs on) drops it — the secondary's guest writes those records again.
 *
 * @module
 */
import type { GuestOutput } from "../adapters/memory/guest_output.ts";
import type { OutputRecord } from "../adapters/wasm/output_log.ts";
import type { ColoReport } from "./colo_state.ts";
import type { ForwardedRecord } from "./engine/colo_records.ts";
import { COMPARE_TIMEOUT_MS, OutputCompare } from "./output_compare.ts";
import { STAT } from "./engine/stats.ts";
import type { MigrationStatus } from "./state_machine.ts";

/** How often the compare timeout is checked (ms). */
const TICK_MS = 100;
/** Most of the output's backlog that goes to the secondary as COLO begins (records). */
export const BACKLOG_RECORDS = 4096;
/** Most of the output's backlog that goes to the secondary as COLO begins (bytes: 4 MiB). */
export const BACKLOG_BYTES = 4 << 20;

/** What the output path uses of the agent. */
export interface ColoOutputDeps {
  /** The machine's output path. */
  output: GuestOutput;
  /** The guest runs (after leaving COLO: this side runs on alone). */
  running(): boolean;
  /** Primary: asks its COLO Worker for a checkpoint now. */
  checkpointNow(): void;
  /** Secondary: tells the primary about a record (through its COLO Worker). */
  toPrimary(seq: number, digest: Uint8Array): void;
  /** Primary: hands its guest's records to its COLO Worker (colo_records.ts). */
  toWorker(records: ForwardedRecord[]): void;
  /** Primary: the outgoing migration's counters, if one runs. */
  stats(): Float64Array | null;
}

/**
 * The output path of an agent: its machine, its outgoing side (the primary's) and its incoming
 * side (the secondary's).
 */
export function coloOutputOf(
  machine: { guestOutput: GuestOutput; runstate: string },
  out: {
    coloCheckpoint(): void;
    coloRecords(records: ForwardedRecord[]): void;
    source: { stats: Float64Array } | null;
  },
  incoming: { coloOutput(seq: number, digest: Uint8Array): void },
): ColoOutput {
  return new ColoOutput({
    output: machine.guestOutput,
    running: () => machine.runstate === "running",
    checkpointNow: () => out.coloCheckpoint(),
    toPrimary: (seq, digest) => incoming.coloOutput(seq, digest),
    toWorker: (records) => out.coloRecords(records),
    stats: () => out.source?.stats ?? null,
  });
}

let sha256: ((bytes: Uint8Array) => Uint8Array) | null = null;

/**
 * Loads the SHA-256 that COLO's output compare digests records with. node:crypto costs an
 * agent ~35 ms of CPU to load, so only an agent with `x-colo` on loads it (the agent asks
 * when the capability is set; COLO begins only after a whole precopy).
 */
export async function loadOutputDigest(): Promise<void> {
  if (sha256) return;
  const { createHash } = await import("node:crypto");
  sha256 = (bytes) => new Uint8Array(createHash("sha256").update(bytes).digest());
}

/** SHA-256 of a record's bytes (loadOutputDigest must have run). */
export function outputDigest(bytes: Uint8Array): Uint8Array {
  if (!sha256) throw new Error("COLO's output digest is not loaded (x-colo was never set)");
  return sha256(bytes);
}

/** A record's bytes again (its text, or its base64). */
function recordBytes(r: OutputRecord): Uint8Array {
  if (r.text !== undefined) return new TextEncoder().encode(r.text);
  return Uint8Array.from(atob(r.base64 ?? ""), (c) => c.charCodeAt(0));
}

/** The newest of `records` within {@link BACKLOG_RECORDS} and {@link BACKLOG_BYTES}, oldest first. */
function backlog(records: OutputRecord[]): ForwardedRecord[] {
  const out: ForwardedRecord[] = [];
  let bytes = 0;
  for (let i = records.length - 1; i >= 0 && out.length < BACKLOG_RECORDS; i--) {
    const b = recordBytes(records[i]);
    bytes += b.length;
    if (bytes > BACKLOG_BYTES) break;
    out.push({ seq: records[i].seq, stream: records[i].stream, bytes: b });
  }
  return out.reverse();
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}

/** The agent's COLO output path (see the module doc). */
export class ColoOutput {
  readonly #d: ColoOutputDeps;
  #compare: OutputCompare<OutputRecord> | null = null;
  #secondary = false;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Primary, holding: records found equal wait here for the next checkpoint (or the exit). */
  #gated: OutputRecord[] | null = null;

  /** The output path of the agent whose parts `deps` are. */
  constructor(deps: ColoOutputDeps) {
    this.#d = deps;
  }

  /** A COLO Worker's report (colo_state.ts), after the COLO status took it. */
  report(m: ColoReport): void {
    if (m.what === "enter") {
      if (m.mode === "primary") this.#primary();
      else this.#startSecondary();
    } else if (m.what === "exit") this.#leave();
    else if (m.what === "hold") {
      if (this.#compare) this.#gated ??= [];
    } else if (m.what === "output") {
      this.#compare?.secondary(m.seq, m.digest, m.epoch);
      this.#count();
    } else if (m.what === "checkpoint") {
      this.#ungate(true);
      this.#compare?.checkpointed(m.nextSeq, m.epoch);
      this.#count();
    } else if (m.what === "records") this.#d.output.adopt(m.records, m.next, m.gen);
  }

  /** Primary: its records go through the compare (a second `enter`, after a hold, keeps it). */
  #primary(): void {
    if (this.#compare) return;
    const { output } = this.#d;
    const log = output.log;
    output.fenced = false; // a new session (the arbiter's fence was for the last one)
    const compare = new OutputCompare<OutputRecord>({
      release: (r) => {
        if (this.#gated) this.#gated.push(r);
        else if (!output.fenced) log.append(r);
      },
      trigger: () => this.#d.checkpointNow(),
    }, COMPARE_TIMEOUT_MS);
    this.#compare = compare;
    // What clients got before COLO began goes to the secondary too, then every new record.
    this.#d.toWorker(backlog(log.since(0)));
    this.#d.output.tap = (r, bytes) => {
      const digest = hex(outputDigest(bytes));
      this.#d.toWorker([{ seq: r.seq, stream: r.stream, bytes, digest }]);
      compare.primary(r.seq, digest, r, performance.now());
      this.#count();
    };
    this.#timer = setInterval(() => compare.tick(performance.now()), TICK_MS);
  }

  /** Secondary: its records go to its log and to the primary. */
  #startSecondary(): void {
    if (this.#secondary) return;
    this.#secondary = true;
    const { output, toPrimary } = this.#d;
    output.fenced = false; // a new session (the arbiter's fence was for the last one)
    // What its guest wrote before this report came (it runs from COLO's start), then the rest.
    for (const r of output.log.since(0)) toPrimary(r.seq, outputDigest(recordBytes(r)));
    output.tap = (r, bytes) => {
      output.log.append(r);
      toPrimary(r.seq, outputDigest(bytes));
    };
  }

  /**
   * An incoming migration's status changed: with x-colo on (`colo`) this machine may become a
   * secondary, so its guest's output is held from the start (its guest may run before the
   * `enter` report comes) until it runs on alone; a migration that ends with this guest
   * running here (not in COLO, or after a failover) shows it (OutputLog.hold / release).
   */
  incoming(to: MigrationStatus, colo: boolean): void {
    const log = this.#d.output.log;
    if ((to === "setup" || to === "active") && colo) log.hold();
    else if ((to === "completed" || to === "failed" || to === "cancelled") && this.#d.running()) {
      log.release();
    }
  }

  #leave(): void {
    clearInterval(this.#timer);
    this.#d.output.tap = null;
    if (this.#secondary && this.#d.running()) this.#d.output.log.release(); // it runs on alone
    this.#secondary = false;
    const compare = this.#compare;
    this.#compare = null;
    if (!compare) return;
    const held = compare.drain();
    const running = this.#d.running();
    this.#ungate(running);
    if (running) { for (const r of held) this.#d.output.log.append(r); }
    this.#count(compare);
  }

  /** Ends a hold: the records found equal meanwhile go to clients (`release`) or are dropped. */
  #ungate(release: boolean): void {
    const gated = this.#gated;
    this.#gated = null;
    if (!gated || !release || this.#d.output.fenced) return;
    for (const r of gated) this.#d.output.log.append(r);
  }

  /** The compare's counters into the outgoing migration's stats. */
  #count(compare = this.#compare): void {
    const s = this.#d.stats();
    if (!s || !compare) return;
    const c = compare.counters;
    s[STAT.coloCompared] = c.compared;
    s[STAT.coloMismatched] = c.mismatched;
    s[STAT.coloHeld] = c.held;
  }
}
