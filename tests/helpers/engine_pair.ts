/**
 * Test helper: runs the engine's source and destination over an in-memory channel pair,
 * with real state machines standing in for the main thread.
 *
 * @module
 */
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import type { Machine } from "../../adapters/memory/machine.ts";
import { MainLink } from "../../domain/engine/main_link.ts";
import type { MainMessage, WorkerMessage } from "../../domain/engine/messages.ts";
import { runDestination } from "../../domain/engine/dest_run.ts";
import { runSource } from "../../domain/engine/source_run.ts";
import { SourceControl } from "../../domain/engine/source_control.ts";
import { PointOfNoReturn } from "../../domain/engine/no_return.ts";
import {
  type Capabilities,
  DEFAULT_CAPABILITIES,
  DEFAULT_PARAMETERS,
  type LiveParameters,
  liveParameters,
} from "../../domain/options.ts";
import { createStats } from "../../domain/engine/stats.ts";
import { MIGRATION_STATUSES, type Side, StateMachine } from "../../domain/state_machine.ts";
import type { Channel } from "../../domain/ports.ts";
import { WireError } from "../../domain/wire/wire_error.ts";

/**
 * Holds back the main thread's handling of a transition request: a promise it waits for
 * before it makes (or refuses) the transition and answers, or undefined to handle it at once.
 * `sm` is that side's state machine (what the main thread's other commands change).
 */
export type TransitionHold = (
  from: string,
  to: string,
  sm: StateMachine,
) => Promise<void> | undefined;

/** A main-thread stand-in for one side (`hold` delays chosen transition requests). */
export function fakeMain(
  side: Side,
  onChange?: (to: string) => void,
  onArrived?: () => void,
  hold?: TransitionHold,
) {
  const status = new Int32Array(new SharedArrayBuffer(4));
  let tail: Promise<void> | null = null;
  const seen: string[] = [];
  const errors: string[] = [];
  const sm = new StateMachine(side, (_f, to) => {
    Atomics.store(status, 0, MIGRATION_STATUSES.indexOf(to));
    seen.push(to);
    onChange?.(to);
  });
  sm.transition("none", "setup");
  const link: MainLink = new MainLink(status, (m: WorkerMessage) => {
    if (m.t === "transition") {
      const answer = () => {
        const ok = sm.transition(m.from, m.to);
        link.receive({ t: "transition-result", seq: m.seq, ok } as MainMessage);
      };
      const held = hold?.(m.from, m.to, sm);
      // A held request and every one after it wait (the main thread answers in order).
      tail = held || tail !== null
        ? (tail ?? Promise.resolve()).then(() => held).then(answer)
        : (queueMicrotask(answer), null);
    } else if (m.t === "error") errors.push(m.message);
    else if (m.t === "arrived") onArrived?.();
  });
  return { sm, link, seen, errors };
}

/**
 * Runs `dst`'s loader alone on `channel` (a stream a test wrote) behind a fake main thread:
 * no autostart, and a run that would wait for a recovery channel gets none. `done` resolves
 * to whether it loaded; `main` has the statuses and errors it reported.
 */
export function loadStream(dst: Machine, channel: Channel) {
  const main = fakeMain("destination");
  const done = runDestination({
    guest: dst.shared,
    stats: createStats(),
    link: main.link,
    autostart: false,
    awaitRecovery: () => Promise.reject(new WireError("no recovery channel in this test")),
    onChannel: () => {},
  }, channel);
  return { main, done };
}

/** How to run one engine-level migration. */
export interface EngineRun {
  caps?: Partial<Capabilities>;
  params?: Partial<LiveParameters>;
  autostart?: boolean;
  /** Sees every source status change, with the source's mailbox. */
  onSourceState?: (to: string, control: SourceControl) => void;
  /** Wraps the source's end of the channel (e.g. to cut it). */
  wrap?: (ch: Channel) => Channel;
  /** The migration's point of no return (a cancel claims it; default: a fresh one). */
  point?: PointOfNoReturn;
  /** The destination keeps the digest of RAM as it arrived (its Machine needs snapshots). */
  arrivalDigest?: boolean;
  /** Delays the source's / the destination's main thread on chosen transitions. */
  holdSource?: TransitionHold;
  holdDestination?: TransitionHold;
}

/** Migrates `src` into `dst` in this thread; resolves when both ends are done. */
export async function migrateInProcess(src: Machine, dst: Machine, r: EngineRun = {}) {
  const [a, b] = memoryChannelPair(1 << 20);
  const control = new SourceControl();
  const s = fakeMain("source", (to) => r.onSourceState?.(to, control), undefined, r.holdSource);
  const d = fakeMain("destination", undefined, () => dst.captureArrival(), r.holdDestination);
  const dstStats = createStats();
  const srcStats = createStats();
  const dest = runDestination({
    guest: dst.shared,
    stats: dstStats,
    link: d.link,
    autostart: r.autostart ?? true,
    decompressThreads: 2,
    arrivalDigest: r.arrivalDigest ?? false,
    awaitRecovery: () => new Promise(() => {}),
    onChannel: () => {},
  }, b);
  await runSource({
    guest: src.shared,
    stats: srcStats,
    link: s.link,
    params: { ...liveParameters(DEFAULT_PARAMETERS), "max-bandwidth": 0, ...r.params },
    caps: { ...DEFAULT_CAPABILITIES, ...r.caps },
    control,
    uri: "memory:",
    connect: () => Promise.resolve(r.wrap ? r.wrap(a) : a),
    onWriter: () => {},
    point: r.point ?? new PointOfNoReturn(),
  });
  const ok = await dest;
  return { s, d, ok, srcStats, dstStats };
}
