/**
 * The primary's COLO phase (QEMU's colo_process_checkpoint): after a precopy's completion
 * (EOF, the secondary's SHUT) the migration does not complete: status `colo`, the guest runs
 * again here once the secondary said CHECKPOINT_READY, and every x-checkpoint-delay ms (the
 * idle period: each checkpoint re-arms it; a changed delay starts one at once) a checkpoint:
 * CHECKPOINT_REQUEST → (secondary stopped) CHECKPOINT_REPLY → this guest stops (runstate
 * colo) → VMSTATE_SEND, the pages dirtied since the last checkpoint → VMSTATE_SIZE and the
 * device state → VMSTATE_RECEIVED → VMSTATE_LOADED → this guest runs again. It drives the
 * session's page sender and full sections; it never throws: every way out leaves this guest
 * running, except a secondary that announced it runs on alone (this guest stops, its state
 * handed over). A secondary silent for the link timeout is held for: this guest stops until it
 * speaks again or lost-heartbeat comes (colo_link.ts); PINGs keep this side heard meanwhile.
 * Output compare: the secondary's output records go to the main thread as they come, with each
 * checkpoint's end and the guest's next seq then (colo_output.ts); the main thread's
 * `colo-checkpoint` starts a checkpoint at once (counted as triggered). This guest's own records
 * come from the main thread too (colo_records.ts): each checkpoint carries, in COLO_RECORDS, the
 * ones the secondary did not write equal, once all of them below the guest's next seq came;
 * those released before COLO began go between checkpoints.
 *
 * @module
 */
import type { MigrationStatus } from "../state_machine.ts";
import {
  ColoMessage,
  type ColoMessageCode,
  type ColoMsg,
  coloName,
  encodeColoFrame,
  encodeColoInput,
} from "../wire/colo.ts";
import { encodeColoRecords, FrameType, WireError } from "../wire/mod.ts";
import { encodeU32Frame } from "../wire/postcopy.ts";
import { keepaliveInterval } from "./link_watch.ts";
import { KEEPALIVE_PING } from "./source_link.ts";
import {
  ColoCounters,
  type ColoEnding,
  coloEnding,
  ColoReplies,
  ColoWatchdog,
  LostHeartbeat,
  PeerExit,
} from "./colo_link.ts";
import { ColoRecordBook, RECORDS_WAIT_MS } from "./colo_records.ts";
import { giveInput, InputQueue } from "./colo_input.ts";
import { leaveColo } from "./colo_leave.ts";
import { CHUNK_PAGES } from "./ram_section.ts";
import type { SourceSession } from "./source_session.ts";

/** At most this many passes of a checkpoint's pages while the guest runs (#livePasses). */
const LIVE_PASSES = 3;
/** Fewer dirty pages than this go with the guest stopped at once (a pass costs a round). */
const LIVE_MIN_PAGES = 64;

/** One outgoing migration's COLO phase (see the module doc). */
export class ColoPhase {
  readonly #s: SourceSession;
  readonly #counters: ColoCounters;
  #replies: ColoReplies | null = null;
  #delay: number;
  #watchdog: ColoWatchdog | null = null;
  /** Between CHECKPOINT_REQUEST and VMSTATE_LOADED. */
  #inCheckpoint = false;
  #lastPing = 0;
  /** x-checkpoint-delay changed or the output compare asked: the next checkpoint starts at once. */
  #triggered = false;
  /** Checkpoints loaded by the secondary. */
  #epoch = 0;
  /** This guest's output records for the secondary (set as COLO begins). */
  #book: ColoRecordBook | null = null;
  /** Input for this guest, given to it and sent to the secondary between checkpoints. */
  readonly #input: InputQueue;

  /** The COLO phase of `session`, whose precopy completed with the connection kept open. */
  constructor(session: SourceSession) {
    this.#s = session;
    this.#counters = new ColoCounters(session.stats);
    this.#delay = Number(session.params["x-checkpoint-delay"]);
    this.#input = new InputQueue(session.ctx.coloInputWaiting);
  }

  /** Enters COLO from `from` (the status the completion ran in) and runs it to its end. */
  async run(from: MigrationStatus): Promise<void> {
    const s = this.#s;
    if (!await s.link.transition(from, "colo")) {
      s.vcpu.setRunstate("running");
      return;
    }
    // The guest is stopped (the precopy's completion): its next record is the first in COLO.
    const book = new ColoRecordBook(s.vcpu.nextOutputSeq());
    this.#book = book;
    s.control.onColoRecords = (records) => book.primary(records);
    s.control.onColoInput = (bytes) => {
      this.#input.push(bytes);
      s.control.wake.notify();
    };
    s.link.post({ t: "colo", what: "enter", mode: "primary" });
    let ending: ColoEnding;
    try {
      s.unwatch(); // a silent secondary is held for, never hung up on (colo_link.ts)
      // The secondary's output records go to the main thread's output compare at once.
      const replies = new ColoReplies(
        s.channel,
        () => s.control.wake.notify(),
        (o, epoch) => {
          const digest = hex(o.digest);
          book.secondary(o.seq, digest, epoch);
          s.link.post({ t: "colo", what: "output", seq: o.seq, digest, epoch });
        },
      );
      this.#replies = replies;
      this.#watchdog = new ColoWatchdog(
        s.linkTimeoutMs,
        () => replies.bytes,
        () => this.#hold(),
        () => this.#resume(),
      );
      this.#watchdog.start();
      await this.#expect(ColoMessage.CHECKPOINT_READY);
      s.vcpu.setRunstate("running");
      await this.#loop();
      ending = { kind: "request" }; // not reached: #loop ends by throwing
    } catch (e) {
      // After a lost-heartbeat, whatever surfaced (a write it cut: source_worker.ts) is its doing.
      const cause = s.control.lostHeartbeat ? new LostHeartbeat() : e;
      ending = coloEnding(cause, s.control.verdict, this.#watchdog?.unproven);
    }
    this.#watchdog?.stop();
    s.control.onColoRecords = null;
    // Input still comes while leaveColo holds: it waits here for whichever way this side goes.
    await leaveColo(this.#s, this.#input, ending);
  }

  /** The secondary went silent: this guest stops; checkpoints wait (see colo_link.ts). */
  #hold(): void {
    this.#s.vcpu.setRunstate("colo");
    this.#s.link.post({ t: "colo", what: "hold" });
    this.#s.control.wake.notify();
  }

  /**
   * The secondary speaks again. Bytes are no proof that it is still this side's secondary (a
   * healed partition brings what it sent before a lost-heartbeat made it run alone, then its
   * EXIT): this guest stays stopped until a checkpoint, at once, gets the secondary's reply
   * (or its EXIT ends COLO here). One in progress goes on and ends with the guest running.
   */
  #resume(): void {
    this.#s.link.post({ t: "colo", what: "enter", mode: "primary" });
    if (!this.#inCheckpoint) this.#triggered = true;
    this.#s.control.wake.notify();
  }

  /** Checkpoints until something ends COLO (it throws). */
  async #loop(): Promise<void> {
    const s = this.#s;
    let next = Date.now() + this.#delay;
    for (;;) {
      this.#check();
      const m = this.#replies!.take();
      if (m) this.#unexpected(m, "between checkpoints");
      if (s.control.checkpointNow) {
        s.control.checkpointNow = false; // the output compare: two guests' output differ
        this.#triggered = true;
      }
      if (s.control.paramsChanged) {
        s.control.paramsChanged = false;
        const delay = Number(s.params["x-checkpoint-delay"]);
        // colo_checkpoint_notify: a changed delay takes effect at once.
        if (delay !== this.#delay) this.#triggered = true;
        this.#delay = delay;
      }
      if (this.#watchdog!.holding) {
        await s.control.wake.wait(1000); // nothing goes out until the secondary speaks
        continue;
      }
      await this.#sendReleased();
      await this.#sendInput();
      if (this.#book!.due) this.#triggered = true; // a checkpoint carries only so many records
      if (this.#triggered || Date.now() >= next) {
        const periodic = !this.#triggered;
        this.#triggered = false;
        await this.#checkpoint(periodic);
        next = Date.now() + this.#delay;
        continue;
      }
      await this.#ping();
      await s.control.wake.wait(Math.max(1, Math.min(1000, next - Date.now())));
    }
  }

  /** One checkpoint (see the module doc); `periodic`: the timer started it. */
  async #checkpoint(periodic: boolean): Promise<void> {
    const s = this.#s;
    const sender = s.sender;
    const before = s.transferred();
    this.#inCheckpoint = true;
    await sender.append(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST));
    await sender.flush();
    await this.#expect(ColoMessage.CHECKPOINT_REPLY);
    await sender.append(encodeColoFrame(ColoMessage.VMSTATE_SEND));
    await this.#livePasses();
    const t0 = performance.now();
    s.vcpu.setRunstate("colo");
    if (!await s.vcpu.waitParkedAsync(5000)) throw new Error("vCPU did not stop");
    const nextSeq = s.vcpu.nextOutputSeq();
    sender.sync();
    while (!await sender.send(CHUNK_PAGES)) this.#check();
    const state: Uint8Array[] = [];
    const sink = {
      append: (f: Uint8Array) => {
        state.push(f.slice());
        return Promise.resolve();
      },
    };
    for (const section of s.sections) {
      if (section.kind === "full") await section.completePrecopy(sink);
    }
    const size = state.reduce((n, f) => n + f.length, 0);
    // The records below nextSeq not written equal on the secondary travel with the checkpoint.
    await this.#awaitRecords(nextSeq);
    await sender.append(encodeColoRecords(nextSeq, this.#book!.take(nextSeq)));
    await sender.append(encodeColoFrame(ColoMessage.VMSTATE_SIZE, size));
    for (const f of state) await sender.append(f);
    await sender.flush();
    await this.#expect(ColoMessage.VMSTATE_RECEIVED);
    await this.#expect(ColoMessage.VMSTATE_LOADED);
    this.#inCheckpoint = false;
    this.#watchdog!.proven();
    // The held output written before it can go to clients (output_compare.ts).
    s.link.post({ t: "colo", what: "checkpoint", epoch: ++this.#epoch, nextSeq });
    s.vcpu.setRunstate("running");
    this.#counters.record(periodic, performance.now() - t0, s.transferred() - before);
  }

  /**
   * The checkpoint's pages while this guest still runs, as a precopy's passes: the pages it
   * dirtied since the last checkpoint go to the secondary's cache now, and only those it
   * dirties meanwhile go with it stopped. The secondary (stopped since its reply) cannot tell:
   * every page arrives between VMSTATE_SEND and VMSTATE_SIZE, its last copy wins, and a page
   * written after it was read is marked again, so the stopped pass sends it. Up to
   * {@link LIVE_PASSES} passes, while more than {@link LIVE_MIN_PAGES} are dirty and fewer each
   * time. The primary's pause is what the guest feels (issue 21's figure); the secondary's
   * guest, whose output is never released while COLO runs, waits for the passes too.
   */
  async #livePasses(): Promise<void> {
    const sender = this.#s.sender;
    let last = Infinity;
    for (let pass = 0; pass < LIVE_PASSES; pass++) {
      sender.sync();
      const dirty = sender.pending;
      if (dirty <= LIVE_MIN_PAGES || dirty >= last) return;
      last = dirty;
      while (!await sender.send(CHUNK_PAGES)) this.#check();
    }
  }

  /** Records released before COLO began, to the secondary (between checkpoints). */
  async #sendReleased(): Promise<void> {
    const book = this.#book!;
    for (let r = book.takeReleased(); r.length > 0; r = book.takeReleased()) {
      await this.#s.sender.append(encodeColoRecords(book.lo, r));
      await this.#s.sender.flush();
    }
  }

  /** Gives the input that came to this guest and sends it to the secondary (colo_input.ts). */
  async #sendInput(): Promise<void> {
    const s = this.#s;
    if (!this.#input.waiting) return; // the COLO loop comes here on every wake
    for (const bytes of this.#input.take()) {
      if (!giveInput(s.ctx.guest, bytes)) {
        s.link.post({
          t: "notice",
          message: `COLO: ${bytes.length} bytes of input dropped: the guest's unread input is full`,
        });
        continue;
      }
      for (const f of encodeColoInput(bytes)) await s.sender.append(f);
    }
    await s.sender.flush();
  }

  /** Waits (bounded) until every record this guest wrote below `next` came from the main thread. */
  async #awaitRecords(next: number): Promise<void> {
    const t0 = performance.now();
    for (;;) {
      this.#check();
      const missing = this.#book!.missing(next);
      if (missing === null) return;
      if (performance.now() - t0 > RECORDS_WAIT_MS) {
        throw new Error(
          `the guest's output records below seq ${next} did not reach the checkpoint ` +
            `within ${RECORDS_WAIT_MS} ms (${missing})`,
        );
      }
      await this.#s.control.wake.wait(50);
    }
  }

  /** Waits for the secondary's `msg` (anything else is a protocol error). */
  async #expect(msg: ColoMessageCode): Promise<void> {
    const s = this.#s;
    for (;;) {
      this.#check();
      const m = this.#replies!.take();
      if (m) {
        if (m.msg !== msg) this.#unexpected(m, `waiting for ${coloName(msg)}`);
        return;
      }
      await s.control.wake.wait(1000);
    }
  }

  /** A PING when one is due, so that a live primary is never silent for the secondary. */
  async #ping(): Promise<void> {
    const now = performance.now();
    if (now - this.#lastPing < keepaliveInterval(this.#s.linkTimeoutMs)) return;
    this.#lastPing = now;
    await this.#s.sender.append(encodeU32Frame(FrameType.PING, KEEPALIVE_PING));
    await this.#s.sender.flush();
  }

  /** The secondary's EXIT ends COLO; any other message out of turn is a protocol error. */
  #unexpected(m: ColoMsg, when: string): never {
    if (m.msg === ColoMessage.EXIT) throw new PeerExit(m.value);
    throw new WireError(`COLO: ${coloName(m.msg)} ${when}`);
  }

  /** lost-heartbeat, a failed write. */
  #check(): void {
    const s = this.#s;
    if (s.control.lostHeartbeat) throw new LostHeartbeat();
    const werr = s.writer.error;
    if (werr) throw werr;
  }
}

function hex(b: Uint8Array): string {
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
