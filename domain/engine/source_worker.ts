/**
 * Worker entry for an outgoing migration: connects, runs the migration, reports back,
 * and turns the main thread's commands into the run's mailbox.
 * Started by `domain/outgoing.ts`; see `messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { countOff, giveInput } from "./colo_input.ts";
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { MainLink } from "./main_link.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import type { LiveParams, MainMessage, SourceStart, WorkerMessage } from "./messages.ts";
import { SourceControl } from "./source_control.ts";
import { PointOfNoReturn } from "./no_return.ts";
import { DEFAULT_PARAMETERS, liveParameters } from "../options.ts";
import { runSource, type SourceContext } from "./source_run.ts";
import { useParentCodecThreads } from "../codecs/codec_threads.ts";
import { CANCEL_GRACE_MS } from "./peer_reason.ts";
import { IdleWarmUp } from "./warm_up.ts";

/**
 * One migration's state in this Worker. A Worker kept warm (warm_workers.ts) runs several
 * migrations one after another: each start makes a new run, and what a finished run's
 * leftovers (a cancel's grace timer, a late reply) touch is that run's, never the next one's.
 */
interface Run {
  /** The number the main thread gave this run: everything it posts carries it. */
  id: number;
  link: MainLink;
  writer: ChannelWriter | null;
  resumeTls: TlsChannelOptions | undefined;
  ctx: SourceContext;
  control: SourceControl;
  params: LiveParams;
}

let run: Run | null = null;
/**
 * This Worker's warm-up (warm_up.ts). A run waits for all of it, in its set-up: a source has
 * not connected yet, so no peer waits meanwhile, and the wait (≤ ~100 ms, only for a migration
 * asked for right after the agent started) counts in setup-time (source_run.ts).
 */
const warmUp = new IdleWarmUp();
/** Compression pools get their Workers from the main thread (nested ones start slowly). */
const codecAnswer = useParentCodecThreads((m) => self.postMessage(m satisfies WorkerMessage));

/** A new run from the main thread's start message. */
function startRun(m: SourceStart & { run?: number }): Run {
  const id = m.run ?? 0;
  const post = (msg: WorkerMessage) => self.postMessage({ ...msg, run: id });
  const control = new SourceControl();
  const params: LiveParams = { ...liveParameters(DEFAULT_PARAMETERS), ...m.params };
  const link = new MainLink(m.status, post);
  const io = { writer: null as ChannelWriter | null, resumeTls: m.recover?.tls };
  if (m.recover) control.resumeUri = m.recover.uri;
  const ctx: SourceContext = {
    guest: m.guest,
    stats: m.stats,
    link,
    params,
    caps: m.caps,
    control,
    uri: m.uri,
    tls: m.tls,
    connect: (uri) => connectChannel(uri ?? m.uri, { tls: io.resumeTls ?? m.tls }),
    onWriter: (w) => {
      io.writer = w;
      if (control.cancelled) w?.shutdown();
    },
    multifdPorts: m.multifdPorts,
    point: new PointOfNoReturn(m.point),
    linkTimeoutMs: m.linkTimeoutMs,
    coloArbiter: m.coloArbiter,
    coloInputWaiting: m.coloInputWaiting,
    recovering: m.recover !== undefined,
    warmedUp: warmUp.runCame(),
  };
  const r: Run = Object.assign(io, { id, link, control, params, ctx });
  runSource(ctx).finally(() => {
    if (run === r) run = null;
    post({ t: "done" });
  });
  return r;
}

self.onmessage = (e: MessageEvent<SourceStart | MainMessage>) => {
  const m = e.data;
  if (codecAnswer(m)) return;
  if (m.t === "start") {
    run = startRun(m);
    return;
  }
  if (m.t === "warm-up") {
    warmUp.start(m.guest, false);
    return;
  }
  const r = run;
  if (r === null) return; // for a run that ended
  const { control } = r;
  switch (m.t) {
    case "cancel":
      control.cancelled = true;
      // The run ends its stream with CANCEL at its next frame boundary (unthrottled, so it
      // gets there); a write stuck on a peer that stopped reading is cut after a grace.
      r.writer?.setRateLimit(0);
      setTimeout(() => r.writer?.shutdown(), CANCEL_GRACE_MS);
      break;
    case "params":
      Object.assign(r.params, m.params);
      control.paramsChanged = true;
      break;
    case "postcopy":
      control.startPostcopy = true;
      // Precopy is over: its rate limit must not hold the switch (a write waiting for the
      // next 100 ms window would delay it, and the package behind it, by up to 100 ms).
      r.writer?.setRateLimit(0);
      break;
    case "continue":
      control.continued = true;
      break;
    case "colo-lost-heartbeat":
      control.verdict = m.verdict ?? null;
      control.lostHeartbeat = true;
      control.wake.notify();
      // COLO is left at the next check; a checkpoint's write stuck on a frozen link (its
      // secondary stopped reading) is cut after a grace, as a cancel's is, so the operator's
      // lost-heartbeat takes effect now, not once the link timeout gives the link up.
      setTimeout(() => r.writer?.shutdown(), CANCEL_GRACE_MS);
      break;
    case "colo-checkpoint":
      control.checkpointNow = true;
      break;
    case "colo-records":
      control.onColoRecords?.(m.records);
      break;
    case "colo-input":
      if (control.onColoInput) control.onColoInput(m.bytes);
      else {
        // COLO ended before this came (the main thread had not seen it yet): the guest's if it
        // runs on here, else said, not dropped in silence.
        countOff(r.ctx.coloInputWaiting, [m.bytes]);
        const here = new VcpuControl(r.ctx.guest).runstate === "running";
        if (!here || !giveInput(r.ctx.guest, m.bytes)) {
          r.link.post({
            t: "notice",
            message: `COLO: ${m.bytes.length} bytes of input not given: COLO had ended`,
          });
        }
      }
      break;
    case "auto-converge":
      control.forceAutoConverge = true;
      break;
    case "pause":
      control.pauseRequested = true;
      r.writer?.shutdown();
      break;
    case "multifd-crash":
      r.ctx.onMultifdCrash?.(m.id, m.message);
      break;
    case "resume":
      r.resumeTls = m.tls;
      control.resumeUri = m.uri;
      break;
    default:
      r.link.receive(m);
  }
  control.wake.notify();
};
