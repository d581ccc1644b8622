/**
 * The source's multifd side: starts one Worker per page channel, runs each dirty pass as
 * a barrier (all channels send their claimed packets and MULTIFD_SYNC before the next
 * dirty-log sync), and stops them with EOF at the end.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import {
  createMultifdShared,
  MF,
  MF_STAT,
  type MultifdChannelStart,
  type MultifdShared,
  stopChannels,
  sumStat,
} from "./multifd_shared.ts";
import { encodeSetup } from "../wire/multifd.ts";
import type { SourceContext } from "./source_context.ts";
import { DEFAULT_LINK_TIMEOUT_MS } from "./link_watch.ts";
import { type FailureRecord, LinkError, TypedFailure } from "./failure.ts";

const CHANNEL_WORKER = new URL("./multifd_worker.ts", import.meta.url);
/** How long a failed channel's reason may take to arrive after its failed mark. */
const REASON_WAIT_MS = 1000;

/** The page channels of one outgoing migration. */
export class MultifdSource {
  readonly shared: MultifdShared;
  readonly #ctl: Int32Array;
  readonly #workers: Worker[] = [];
  readonly #ports: MessagePort[] = [];
  readonly #channels: number;
  #error: FailureRecord | null = null;
  #gen = 0;
  #ended = 0;

  /** Starts `channels` channel Workers connecting to `uri`. */
  constructor(
    guest: SharedGuest,
    uri: string,
    shared: MultifdShared,
    opts:
      & Pick<
        MultifdChannelStart,
        "channels" | "pageCount" | "uuid" | "rateLimit" | "tls" | "linkTimeoutMs"
      >
      & {
        /** Ports of channel Workers started elsewhere (the main thread); else started here. */
        ports?: MessagePort[];
      },
  ) {
    this.shared = shared;
    this.#ctl = new Int32Array(shared.ctl);
    this.#channels = opts.channels;
    for (let id = 0; id < opts.channels; id++) {
      const port = opts.ports?.[id];
      const w = port ?? new Worker(CHANNEL_WORKER, { type: "module" });
      w.onmessage = (e) => {
        if (e.data.t === "error") {
          this.#error ??= { kind: e.data.kind ?? "local", message: e.data.message };
        } else if (e.data.t === "done") this.#ended++;
      };
      if (w instanceof Worker) {
        w.onerror = (e) => {
          e.preventDefault();
          this.crashed(id, e.message);
        };
      }
      const start: MultifdChannelStart = {
        t: "start",
        uri,
        guest,
        shared,
        id,
        channels: opts.channels,
        pageCount: opts.pageCount,
        uuid: opts.uuid,
        rateLimit: opts.rateLimit / opts.channels,
        tls: opts.tls,
        linkTimeoutMs: opts.linkTimeoutMs,
      };
      w.postMessage(start);
      if (w instanceof Worker) this.#workers.push(w);
      else this.#ports.push(w);
    }
  }

  /**
   * Starts the page channels of the migration `ctx` runs (x-multifd-channels of them, on
   * `bitmap` and `sent`): `announce` sends MULTIFD_SETUP on the main stream; resolves once
   * every channel is in.
   */
  static async start(
    ctx: SourceContext,
    shared: {
      bitmap: SharedArrayBuffer;
      sent: SharedArrayBuffer;
      announce: (frame: Uint8Array) => Promise<void>;
    },
  ): Promise<MultifdSource> {
    const { guest, params } = ctx;
    const uuid = crypto.getRandomValues(new Uint8Array(16));
    const channels = params["x-multifd-channels"];
    const pageCount = params["x-multifd-page-count"];
    await shared.announce(encodeSetup(uuid, pageCount, channels));
    const mfd = new MultifdSource(
      guest,
      ctx.uri,
      { ...createMultifdShared(channels, 0), bitmap: shared.bitmap, sent: shared.sent },
      {
        channels,
        pageCount,
        uuid,
        rateLimit: params["max-bandwidth"],
        tls: ctx.tls,
        linkTimeoutMs: ctx.linkTimeoutMs ?? DEFAULT_LINK_TIMEOUT_MS,
        ports: ctx.multifdPorts,
      },
    );
    ctx.onMultifdCrash = (id, message) => mfd.crashed(id, message);
    await mfd.ready();
    return mfd;
  }

  /** A channel Worker crashed. */
  crashed(id: number, message: string): void {
    this.#error ??= { kind: "local", message: `multifd channel ${id} crashed: ${message}` };
    Atomics.add(this.#ctl, MF.FAILED, 1);
    Atomics.notify(this.#ctl, MF.DONE);
  }

  /** The first channel error (typed as it was in its channel), if any. */
  get error(): Error | null {
    return this.#error ? new TypedFailure(this.#error.kind, this.#error.message) : null;
  }

  /** Bytes sent on every page channel. */
  get bytes(): number {
    return sumStat(this.shared, MF_STAT.bytes);
  }

  /** Normal and zero pages sent on every page channel. */
  pages(): { normal: number; duplicate: number } {
    return {
      normal: sumStat(this.shared, MF_STAT.normal),
      duplicate: sumStat(this.shared, MF_STAT.duplicate),
    };
  }

  /**
   * Throws the first channel error. A channel marks itself failed in shared memory at once
   * and says why in a message, which this Worker reads only between tasks: when the mark is
   * there and the reason not yet, wait (bounded) for the reason, so that the failure keeps
   * its kind (a dead peer, a peer's refusal) rather than a reasonless "channel failed".
   */
  async #check(): Promise<void> {
    const end = Date.now() + REASON_WAIT_MS;
    while (!this.#error && Atomics.load(this.#ctl, MF.FAILED) > 0 && Date.now() < end) {
      await new Promise((r) => setTimeout(r, 5));
    }
    if (this.#error || Atomics.load(this.#ctl, MF.FAILED) > 0) {
      throw this.error ?? new Error("a multifd channel failed");
    }
  }

  /** Waits until every channel is connected and introduced. */
  async ready(timeoutMs = 10_000): Promise<void> {
    const end = Date.now() + timeoutMs;
    for (;;) {
      await new Promise((r) => setTimeout(r, 0)); // let error messages arrive
      await this.#check();
      const n = Atomics.load(this.#ctl, MF.READY);
      if (n >= this.#channels) return;
      if (Date.now() > end) {
        throw new Error(`multifd: only ${n} of ${this.#channels} channels connected`);
      }
      const r = Atomics.waitAsync(this.#ctl, MF.READY, n, 100);
      if (r.async) await r.value;
    }
  }

  /**
   * One pass: every marked page goes out on some channel, each channel ends with
   * MULTIFD_SYNC(gen). `tick` runs about every 100 ms while waiting (counters, cancel).
   */
  async pass(tick: () => void): Promise<number> {
    const gen = ++this.#gen;
    Atomics.store(this.#ctl, MF.DONE, 0);
    Atomics.store(this.#ctl, MF.CURSOR, 0);
    Atomics.store(this.#ctl, MF.GEN, gen);
    Atomics.notify(this.#ctl, MF.GEN);
    for (;;) {
      await this.#check();
      const done = Atomics.load(this.#ctl, MF.DONE);
      if (done >= this.#channels) return gen;
      const r = Atomics.waitAsync(this.#ctl, MF.DONE, done, 100);
      if (r.async) await r.value;
      await new Promise((res) => setTimeout(res, 0));
      tick();
    }
  }

  /**
   * Ends the running pass early: each channel sends what it claimed and its MULTIFD_SYNC;
   * pages nobody claimed stay marked in the bitmap (postcopy sends them on the main
   * channel, as QEMU does).
   */
  cut(): void {
    Atomics.store(this.#ctl, MF.CUT, 1);
  }

  /** Changes the channels' share of max-bandwidth. */
  setRate(bytesPerSecond: number): void {
    for (const w of [...this.#workers, ...this.#ports]) {
      w.postMessage({ t: "rate", rate: bytesPerSecond / this.#channels });
    }
  }

  /** Ends every channel with EOF and waits for them (bounded). */
  async finish(timeoutMs = 10_000): Promise<void> {
    stopChannels(this.#ctl);
    const end = Date.now() + timeoutMs;
    while (this.#ended < this.#channels) {
      await this.#check();
      if (Date.now() > end) {
        throw new LinkError(
          "timeout",
          `multifd: ${this.#channels - this.#ended} of ${this.#channels} channels did not end`,
        );
      }
      await new Promise((r) => setTimeout(r, 5));
    }
    await this.#check();
  }

  /** Stops at once (cancel, failure, end). */
  terminate(): void {
    stopChannels(this.#ctl);
    for (const w of this.#workers) {
      w.postMessage({ t: "shutdown" });
      w.terminate();
    }
    for (const p of this.#ports) p.postMessage({ t: "shutdown" });
    this.#workers.length = 0;
    this.#ports.length = 0;
  }
}
