/**
 * The primary's side of COLO's link, apart from the phase that drives it: the reader of the
 * secondary's messages (after the precopy's SHUT nothing else reads the return path), how a
 * way out of COLO is classified, and the checkpoint counters (stats.ts `colo*` slots).
 *
 * A peer whose process died ends the connection (EOF, or RST from its kernel): that is proof,
 * and the other side runs on alone — so in COLO a live side never closes the connection without
 * an EXIT first. A link that only went silent proves nothing (the peer may run on behind a
 * partition, or be frozen): that side holds — its guest stopped, the connection open — and waits
 * for `lost-heartbeat` (or for the peer to speak again). See {@link ColoWatchdog}. With
 * `--colo-arbiter` neither proves anything: a side that lost its peer either way holds until the
 * arbiter's verdict (domain/colo_arbiter.ts) comes as a lost-heartbeat with a verdict: it runs on
 * alone (won) or stops, fenced (lost).
 *
 * @module
 */
import { readFull } from "./channel_io.ts";
import type { Channel } from "../ports.ts";
import {
  ColoMessage,
  type ColoMsg,
  type ColoOutput,
  decodeColoOutput,
  decodeColoReply,
  decodeRpHeader,
  decodeRpMessage,
  RP_COLO,
  RP_COLO_OUTPUT,
  RP_HEADER_SIZE,
  RpType,
  WireError,
} from "../wire/mod.ts";
import { ColoExitCode } from "../wire/mod.ts";
import { decodeRpReason, isRpReason } from "../wire/peer_reason.ts";
import { failureKind, LinkError } from "./failure.ts";
import { STAT } from "./stats.ts";

/** How a COLO side leaves (see the module doc). */
export type ColoEnding =
  /** lost-heartbeat here: this side runs on alone. */
  | { kind: "request" }
  /** The peer announced it runs on alone (its lost-heartbeat): this side stops. */
  | { kind: "fenced" }
  /** The peer's process died (EOF / RST): this side runs on alone. */
  | { kind: "dead" }
  /** The link went silent: hold, wait for lost-heartbeat. */
  | { kind: "silent" }
  /** A protocol or local error (or the peer's announced error): this side runs on alone. */
  | { kind: "failed"; message: string }
  /** The arbiter's verdict: this side holds the key and runs on alone. */
  | { kind: "won" }
  /** The arbiter's verdict: the peer holds the key, or this side's lease lapsed: it stops. */
  | { kind: "lost" };

/** lost-heartbeat came while a checkpoint was under way. */
export class LostHeartbeat extends Error {
  constructor() {
    super("lost heartbeat requested");
    this.name = "LostHeartbeat";
  }
}

/** The peer sent EXIT (value: ColoExitCode). */
export class PeerExit extends Error {
  readonly value: number;
  constructor(value: number) {
    super(value === ColoExitCode.REQUEST ? "the peer left COLO" : "the peer failed in COLO");
    this.name = "PeerExit";
    this.value = value;
  }
}

/**
 * Classifies what ended a COLO run (see the module doc); `verdict`: the arbiter's, which came
 * with the lost-heartbeat; `unproven`: the peer went silent and no checkpoint completed since
 * ({@link ColoWatchdog.unproven}), so a connection that ends is no proof that it died (it may
 * have run alone, by lost-heartbeat, and hung up meanwhile): silent, not dead.
 */
export function coloEnding(
  e: unknown,
  verdict: "won" | "lost" | null = null,
  unproven = false,
): ColoEnding {
  if (e instanceof LostHeartbeat) return { kind: verdict ?? "request" };
  if (e instanceof PeerExit) {
    return e.value === ColoExitCode.REQUEST
      ? { kind: "fenced" }
      : { kind: "failed", message: e.message };
  }
  if (e instanceof LinkError) return { kind: "silent" };
  if (failureKind(e) === "link") return { kind: unproven ? "silent" : "dead" };
  return { kind: "failed", message: e instanceof Error ? e.message : String(e) };
}

/**
 * Reads the secondary's messages: COLO ones queue, its output records go to `onOutput` at once
 * with the number of VMSTATE_LOADED read before them (the checkpoint whose guest wrote them),
 * PONGs only show the link lives.
 */
export class ColoReplies {
  readonly #queue: ColoMsg[] = [];
  readonly #onOutput: (o: ColoOutput, epoch: number) => void;
  #error: unknown = null;
  /** VMSTATE_LOADED messages read. */
  #loaded = 0;
  /** The secondary's own reason, when it refused something. */
  reason: string | null = null;
  /** Bytes read from the secondary so far (the heartbeat watches it). */
  bytes = 0;

  /** Starts reading `channel`; `wake` runs after every message and at the end. */
  constructor(
    channel: Channel,
    wake: () => void,
    onOutput: (o: ColoOutput, epoch: number) => void = () => {},
  ) {
    this.#onOutput = onOutput;
    this.#read(channel, wake).catch((e) => {
      this.#error ??= e;
      wake();
    });
  }

  /** The oldest message not taken yet, or null; throws once the reader failed. */
  take(): ColoMsg | null {
    const m = this.#queue.shift();
    if (m) return m;
    if (this.#error) throw this.#error;
    return null;
  }

  async #read(ch: Channel, wake: () => void): Promise<void> {
    const head = new Uint8Array(RP_HEADER_SIZE);
    const data = new Uint8Array(512);
    for (;;) {
      await readExact(ch, head);
      const { length } = rpLength(head);
      await readExact(ch, data.subarray(0, length));
      this.bytes += RP_HEADER_SIZE + length;
      const body = data.subarray(0, length);
      const type = (head[0] << 8) | head[1];
      if (isRpReason(head)) this.reason = decodeRpReason(body);
      else if (type === RP_COLO_OUTPUT) this.#onOutput(decodeColoOutput(body), this.#loaded);
      else if (type === RP_COLO) {
        const m = decodeColoReply(body);
        if (m.msg === ColoMessage.VMSTATE_LOADED) this.#loaded++;
        this.#queue.push(m);
      } else {
        const { type } = decodeRpHeader(head);
        if (decodeRpMessage(type, body).type !== RpType.PONG) {
          throw new WireError(`COLO: unexpected return-path message type ${type}`);
        }
      }
      wake();
    }
  }
}

function rpLength(head: Uint8Array): { length: number } {
  const length = (head[2] << 8) | head[3];
  if (length > 512) throw new WireError(`COLO: return-path message of ${length} bytes`);
  return { length };
}

async function readExact(ch: Channel, buf: Uint8Array): Promise<void> {
  if (!await readFull(ch, buf)) {
    throw new WireError("COLO: the peer closed the connection", "truncated");
  }
}

/**
 * COLO's heartbeat: the link watch would close a silent connection, and a closed connection
 * reads as the peer's death on the other side, so in COLO each side watches its peer itself
 * and never closes: no byte from the peer for `timeoutMs` (the link timeout) → `onHold` (this
 * side stops its guest and waits for lost-heartbeat); bytes again → `onResume`.
 */
export class ColoWatchdog {
  readonly #timeoutMs: number;
  readonly #progress: () => number;
  readonly #onHold: () => void;
  readonly #onResume: () => void;
  #last = -1;
  #heard = performance.now();
  #timer: ReturnType<typeof setInterval> | undefined;
  /** The peer has been silent for the timeout (and not heard since). */
  holding = false;
  /**
   * The peer went silent and no checkpoint completed since ({@link proven}): bytes from it are
   * no proof that it is still this side's peer (a healed partition brings what it sent before
   * it ran alone), nor is a connection that ends proof that it died.
   */
  unproven = false;

  /** Watches `progress` (bytes read from the peer so far). */
  constructor(timeoutMs: number, progress: () => number, onHold: () => void, onResume: () => void) {
    this.#timeoutMs = timeoutMs;
    this.#progress = progress;
    this.#onHold = onHold;
    this.#onResume = onResume;
  }

  /** Starts watching (every tenth of the timeout, at most every 250 ms). */
  start(): void {
    this.#last = this.#progress();
    this.#heard = performance.now();
    this.#timer = setInterval(() => this.poll(), Math.min(250, this.#timeoutMs / 10));
  }

  /** Applies the rule now. */
  poll(): void {
    const p = this.#progress();
    const now = performance.now();
    if (p !== this.#last) {
      this.#last = p;
      this.#heard = now;
      if (this.holding) {
        this.holding = false;
        this.#onResume();
      }
    } else if (!this.holding && now - this.#heard >= this.#timeoutMs) {
      this.holding = true;
      this.unproven = true;
      this.#onHold();
    }
  }

  /** A checkpoint completed with the peer: it is this side's peer, alive. */
  proven(): void {
    this.unproven = false;
  }

  /** Stops watching. */
  stop(): void {
    clearInterval(this.#timer);
  }
}

/** Pauses kept for the percentiles. */
const KEPT = 1024;

/** The checkpoint counters in a migration's stats (see stats.ts). */
export class ColoCounters {
  readonly #stats: Float64Array;
  readonly #pauses: number[] = [];

  /** Counts into `stats`. */
  constructor(stats: Float64Array) {
    this.#stats = stats;
  }

  /** One checkpoint: how it started, the pause (ms) and its bytes. */
  record(periodic: boolean, pauseMs: number, bytes: number): void {
    const s = this.#stats;
    s[STAT.coloCheckpoints]++;
    s[periodic ? STAT.coloPeriodic : STAT.coloTriggered]++;
    s[STAT.coloPauseLast] = pauseMs;
    s[STAT.coloBytesLast] = bytes;
    s[STAT.coloBytesTotal] += bytes;
    this.#pauses.push(pauseMs);
    if (this.#pauses.length > KEPT) this.#pauses.shift();
    const sorted = [...this.#pauses].sort((a, b) => a - b);
    s[STAT.coloPauseP50] = percentile(sorted, 0.5);
    s[STAT.coloPauseP99] = percentile(sorted, 0.99);
  }
}

/** The nearest-rank percentile `q` of ascending `sorted` (0 when empty). */
export function percentile(sorted: readonly number[], q: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)];
}
