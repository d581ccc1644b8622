/**
 * The secondary's COLO side (QEMU's colo_process_incoming_thread): after the precopy's EOF
 * and its SHUT the guest runs here on its own RAM while checkpoints arrive on the same
 * connection, watched by COLO's heartbeat instead of the link watch. Pages land in the checkpoint cache (cache_placement.ts); the device state is
 * held aside; only a whole checkpoint is applied: the cached pages that either side dirtied
 * since the last checkpoint (this guest's dirty log is merged first) are copied into RAM, the
 * device state is loaded, the guest runs again. A checkpoint cut halfway leaves RAM and the
 * running guest as they were. How COLO is left: colo_link.ts (EOF / RST = the primary died:
 * run on alone; the primary's EXIT: stop). A primary silent for the link timeout is held for:
 * the guest stops until it speaks again or lost-heartbeat comes. With `--colo-arbiter` a primary
 * that died is held for too, until the arbiter's verdict: run on alone (won) or stop (lost).
 * This guest's output records, which the main thread hands over (`colo-output`), go to the
 * primary as RP_COLO_OUTPUT for its output compare. The primary's records a checkpoint carries (COLO_RECORDS, once, before
 * VMSTATE_SIZE) are held with it and go to the main thread only when it is applied, before
 * VMSTATE_LOADED, to take the place of this guest's own (colo_output.ts); those that come
 * between checkpoints (released before COLO began) go at once. Never throws.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import type { Channel } from "../ports.ts";
import {
  ColoExitCode,
  ColoMessage,
  type ColoMessageCode,
  coloName,
  type ColoRecords,
  decodeColoFrame,
  decodeColoRecords,
  decodeSectionFull,
  encodeColoOutput,
  encodeColoReply,
  encodeRpPong,
  type FrameReader,
  FrameType,
  WireError,
} from "../wire/mod.ts";
import { decodeU32 } from "../wire/postcopy.ts";
import { type ColoEnding, coloEnding, ColoWatchdog, PeerExit } from "./colo_link.ts";
import type { ReturnPath } from "./dest_support.ts";
import type { SectionLoader } from "./live_section.ts";
import type { MainLink } from "./main_link.ts";
import type { RamLoader } from "./ram_loader.ts";
import type { SectionTable } from "./section_table.ts";
import { Signal } from "./signal.ts";
import { STAT } from "./stats.ts";
import { giveInput } from "./colo_input.ts";

/** The most device-state bytes one checkpoint may announce (VMSTATE_SIZE). */
export const MAX_COLO_STATE = 16 << 20;

/** The destination Worker's COLO switches: the agent's x-colo and lost-heartbeat. */
export class ColoControl {
  /** lost-heartbeat was asked. */
  lostHeartbeat = false;
  /** The arbiter's verdict that came with lostHeartbeat (null: the operator's request). */
  verdict: "won" | "lost" | null = null;
  /** `--colo-arbiter`: a secondary that lost its primary holds for the verdict. */
  readonly arbitrated: boolean;
  readonly wake = new Signal();
  /** What a lost-heartbeat does to a running COLO (set while one runs). */
  onLostHeartbeat: (() => void) | null = null;
  /** Tells the primary about an output record of this guest (set while COLO runs). */
  onOutput: ((seq: number, digest: Uint8Array) => void) | null = null;
  readonly #enabled?: Int32Array;

  /** Reads x-colo from `enabled` (the agent's cell), off without one. */
  constructor(enabled?: Int32Array, arbitrated = false) {
    this.#enabled = enabled;
    this.arbitrated = arbitrated;
  }

  /** The agent's x-colo is on now. */
  get enabled(): boolean {
    return this.#enabled !== undefined && Atomics.load(this.#enabled, 0) === 1;
  }

  /** x-colo-lost-heartbeat, or the arbiter's `verdict`. */
  requestLostHeartbeat(verdict?: "won" | "lost"): void {
    this.verdict = verdict ?? null;
    this.lostHeartbeat = true;
    this.onLostHeartbeat?.();
    this.wake.notify();
  }
}

/** What the secondary's COLO uses of its incoming run. */
export interface DestColoDeps {
  guest: SharedGuest;
  vcpu: VcpuControl;
  link: MainLink;
  stats: Float64Array;
  reader: FrameReader;
  channel: Channel;
  rp: ReturnPath;
  ram: RamLoader;
  /** The RAM section's loader (page frames). */
  ramSection: SectionLoader;
  /** Every section's loader (the device state's SECTION_FULL records). */
  sections: SectionTable;
  control: ColoControl;
  /** The link timeout (ms): COLO's heartbeat (colo_link.ts). */
  timeoutMs: number;
  /** Stops the run's link watch (it would close a silent connection). */
  unwatch(): void;
}

/**
 * COLO_ENABLE: the secondary's side of an incoming run; refused unless x-colo is on here too
 * and the stream opened its return path.
 */
export function enableSecondary(
  control: ColoControl | undefined,
  parts: Omit<DestColoDeps, "control" | "rp" | "reader" | "channel"> & {
    rp: ReturnPath | null;
    reader: FrameReader | null;
    channel: Channel | null;
  },
): DestColo {
  if (!control?.enabled) {
    throw new WireError("COLO is not enabled on the destination (capability x-colo)");
  }
  const { rp, reader, channel } = parts;
  if (!rp || !reader || !channel) throw new WireError("COLO needs the return path");
  return new DestColo({ ...parts, rp, reader, channel, control });
}

/** The secondary's COLO (see the module doc). */
export class DestColo {
  readonly #d: DestColoDeps;
  readonly #own: Uint8Array;
  /** Watches the primary while COLO runs (see colo_link.ts). */
  #watchdog: ColoWatchdog | null = null;

  /** The COLO side of an incoming run that received COLO_ENABLE. */
  constructor(deps: DestColoDeps) {
    this.#d = deps;
    this.#own = new Uint8Array(deps.guest.dirty);
  }

  /** Before the guest first runs here: pages go to a copy of RAM; its dirty log starts clean. */
  prepare(): void {
    this.#d.ram.place("cache");
    this.#own.fill(0);
  }

  /** Status `colo` is set: runs COLO to its end (never throws). */
  async run(): Promise<void> {
    const d = this.#d;
    d.link.post({ t: "colo", what: "enter", mode: "secondary" });
    d.control.onLostHeartbeat = () => {
      // Tell the primary first (it stops its guest), then end the exchange here; fenced by the
      // arbiter: no word, the connection just ends (a live primary then claims).
      if (d.control.verdict === "lost") d.channel.close();
      else void this.#sendExit(ColoExitCode.REQUEST).finally(() => d.channel.close());
    };
    // This guest's output records go to the primary for its output compare (RP_COLO_OUTPUT).
    d.control.onOutput = (seq, digest) => void d.rp.send(encodeColoOutput(seq, digest));
    d.unwatch(); // a silent primary is held for, never hung up on (colo_link.ts)
    const watchdog = new ColoWatchdog(d.timeoutMs, () => d.reader.bytesRead, () => {
      // No proof that the primary died: the guest stops until it speaks or lost-heartbeat.
      d.vcpu.setRunstate("colo");
      d.link.post({ t: "colo", what: "hold" });
    }, () => {
      // Bytes are no proof either (a healed partition brings what it sent before it ran
      // alone): the guest runs again when the next checkpoint is applied.
      d.link.post({ t: "colo", what: "enter", mode: "secondary" });
    });
    this.#watchdog = watchdog;
    watchdog.start();
    let ending: ColoEnding;
    try {
      if (d.control.lostHeartbeat) throw new Error("lost heartbeat");
      await d.rp.send(encodeColoReply(ColoMessage.CHECKPOINT_READY));
      for (;;) await this.#checkpoint();
    } catch (e) {
      ending = d.control.lostHeartbeat
        ? { kind: d.control.verdict ?? "request" }
        : coloEnding(e, null, watchdog.unproven);
    }
    watchdog.stop();
    d.control.onLostHeartbeat = null;
    d.control.onOutput = null;
    await this.#leave(ending);
  }

  /** One checkpoint, from CHECKPOINT_REQUEST to VMSTATE_LOADED. */
  async #checkpoint(): Promise<void> {
    const d = this.#d;
    await this.#expect(ColoMessage.CHECKPOINT_REQUEST);
    d.vcpu.setRunstate("colo");
    if (!await d.vcpu.waitParkedAsync(5000)) throw new Error("vCPU did not stop");
    await d.rp.send(encodeColoReply(ColoMessage.CHECKPOINT_REPLY));
    await this.#expect(ColoMessage.VMSTATE_SEND);
    const start = d.reader.bytesRead;
    let size = -1;
    let records: ColoRecords | null = null;
    while (size < 0) {
      const f = await d.reader.next();
      if (f.type === FrameType.COLO) {
        const m = decodeColoFrame(await d.reader.readPayload());
        if (m.msg !== ColoMessage.VMSTATE_SIZE) this.#unexpected(m.msg, m.value, "in the pages");
        if (m.value > MAX_COLO_STATE) throw new WireError(`COLO: ${m.value} bytes of state`);
        if (!records) throw new WireError("COLO: a checkpoint without its output records");
        size = m.value;
      } else if (f.type === FrameType.COLO_RECORDS) {
        if (records) throw new WireError("COLO: two COLO_RECORDS frames in one checkpoint");
        records = await this.#records(f.length);
      } else if (f.type === FrameType.PING) {
        await d.rp.send(encodeRpPong(decodeU32(await d.reader.readPayload())));
      } else await d.ramSection.loadState(f.type, f.length, d.reader);
    }
    await d.ramSection.settle();
    const state: Uint8Array[] = [];
    for (let got = 0; got < size;) {
      const f = await d.reader.next();
      if (f.type !== FrameType.SECTION_FULL) {
        throw new WireError("COLO: the device state is not whole sections");
      }
      const payload = new Uint8Array(f.length);
      await d.reader.readInto(payload);
      got += 5 + f.length;
      if (got > size) throw new WireError("COLO: the device state overruns VMSTATE_SIZE");
      state.push(payload);
    }
    await d.rp.send(encodeColoReply(ColoMessage.VMSTATE_RECEIVED));
    // The whole checkpoint is here: apply it (the guest is stopped).
    // The device state first: it is checked whole before it changes anything, so a bad one
    // leaves RAM as it was too; then the pages (a copy that cannot fail).
    for (const r of state.map(decodeSectionFull)) d.sections.full(r);
    d.ram.commitCache(this.#own);
    // The primary's records below its next seq take the place of this guest's (colo_output.ts).
    const { next, records: list } = records!;
    d.link.post({ t: "colo", what: "records", next, gen: d.vcpu.generation, records: list });
    d.stats[STAT.coloCheckpoints]++;
    d.stats[STAT.coloBytesLast] = d.reader.bytesRead - start;
    d.stats[STAT.coloBytesTotal] += d.reader.bytesRead - start;
    d.stats[STAT.transferred] = d.reader.bytesRead;
    this.#watchdog?.proven();
    d.vcpu.setRunstate("running");
    await d.rp.send(encodeColoReply(ColoMessage.VMSTATE_LOADED));
  }

  /** A COLO_RECORDS payload of `length` bytes (bounded by the frame table). */
  async #records(length: number): Promise<ColoRecords> {
    const payload = new Uint8Array(length);
    await this.#d.reader.readInto(payload);
    return decodeColoRecords(payload);
  }

  /**
   * Reads up to the primary's next COLO message (answering PINGs; between checkpoints, taking
   * the records the primary released before COLO began and the input its guest was given): it
   * must be `msg`.
   */
  async #expect(msg: ColoMessageCode): Promise<void> {
    const d = this.#d;
    for (;;) {
      const f = await d.reader.next();
      if (f.type === FrameType.PING) {
        await d.rp.send(encodeRpPong(decodeU32(await d.reader.readPayload())));
        continue;
      }
      if (f.type === FrameType.COLO_RECORDS && msg === ColoMessage.CHECKPOINT_REQUEST) {
        const { next, records } = await this.#records(f.length);
        d.link.post({ t: "colo", what: "records", next, gen: null, records });
        continue;
      }
      if (f.type === FrameType.COLO_INPUT && msg === ColoMessage.CHECKPOINT_REQUEST) {
        // Input the primary's guest was given: this guest reads it too (colo_input.ts).
        const bytes = await d.reader.readPayload();
        if (!giveInput(d.guest, bytes.slice())) {
          d.link.post({
            t: "notice",
            message: `COLO: ${bytes.length} bytes of mirrored input dropped: unread input is full`,
          });
        }
        continue;
      }
      if (f.type !== FrameType.COLO) {
        throw new WireError(
          `COLO: frame 0x${f.type.toString(16)} while waiting for ${coloName(msg)}`,
        );
      }
      const m = decodeColoFrame(await d.reader.readPayload());
      if (m.msg !== msg) this.#unexpected(m.msg, m.value, `while waiting for ${coloName(msg)}`);
      return;
    }
  }

  #unexpected(msg: number, value: number, when: string): never {
    if (msg === ColoMessage.EXIT) throw new PeerExit(value);
    throw new WireError(`COLO: ${coloName(msg)} ${when}`);
  }

  /** Leaves COLO as `ending` says, and reports it. */
  async #leave(ending: ColoEnding): Promise<void> {
    const d = this.#d;
    if (ending.kind === "silent" || (ending.kind === "dead" && d.control.arbitrated)) {
      // No proof that the primary died (with an arbiter, no decision yet either): the guest
      // stays stopped until lost-heartbeat or the arbiter's verdict (colo_arbiter.ts).
      d.vcpu.setRunstate("colo");
      d.link.post({ t: "colo", what: "hold" });
      while (!d.control.lostHeartbeat) await d.control.wake.wait(1000);
      ending = { kind: d.control.verdict ?? "request" };
    }
    if (ending.kind === "failed") await this.#sendExit(ColoExitCode.ERROR);
    d.channel.close();
    // Runs on alone when the primary died, was given up by request, or the arbiter said so;
    // stops otherwise.
    const alone = ending.kind === "request" || ending.kind === "dead" || ending.kind === "won";
    d.vcpu.setRunstate(alone ? "running" : "paused");
    const error = ending.kind === "dead" || ending.kind === "failed" || ending.kind === "won" ||
      ending.kind === "lost";
    d.link.post({ t: "colo", what: "exit", reason: error ? "error" : "request" });
    if (ending.kind === "failed") {
      d.link.post({ t: "error", message: `COLO: ${ending.message}` });
      await d.link.transition("colo", "failed");
    } else await d.link.transition("colo", "completed");
  }

  /** Tells the primary this side leaves (bounded: the link may be gone). */
  async #sendExit(code: number): Promise<void> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.#d.rp.send(encodeColoReply(ColoMessage.EXIT, code)),
      new Promise<void>((r) => timer = setTimeout(r, 300)),
    ]);
    clearTimeout(timer);
  }
}
