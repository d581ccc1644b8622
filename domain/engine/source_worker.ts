/**
 * Worker entry for an outgoing migration: connects, runs the migration, reports back,
 * and turns the main thread's commands into the run's mailbox.
 * Started by `domain/outgoing.ts`; see `messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
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

let link: MainLink | null = null;
let writer: ChannelWriter | null = null;
let resumeTls: TlsChannelOptions | undefined;
let ctx: SourceContext | null = null;
const control = new SourceControl();
const params: LiveParams = liveParameters(DEFAULT_PARAMETERS);
/** Compression pools get their Workers from the main thread (nested ones start slowly). */
const codecAnswer = useParentCodecThreads((m) => self.postMessage(m satisfies WorkerMessage));

self.onmessage = (e: MessageEvent<SourceStart | MainMessage>) => {
  const m = e.data;
  if (codecAnswer(m)) return;
  switch (m.t) {
    case "start":
      Object.assign(params, m.params);
      link = new MainLink(m.status, (msg: WorkerMessage) => self.postMessage(msg));
      if (m.recover) {
        resumeTls = m.recover.tls;
        control.resumeUri = m.recover.uri;
      }
      ctx = {
        guest: m.guest,
        stats: m.stats,
        link,
        params,
        caps: m.caps,
        control,
        uri: m.uri,
        tls: m.tls,
        connect: (uri) => connectChannel(uri ?? m.uri, { tls: resumeTls ?? m.tls }),
        onWriter: (w) => {
          writer = w;
          if (control.cancelled) w?.shutdown();
        },
        multifdPorts: m.multifdPorts,
        point: new PointOfNoReturn(m.point),
        linkTimeoutMs: m.linkTimeoutMs,
        coloArbiter: m.coloArbiter,
        recovering: m.recover !== undefined,
      };
      runSource(ctx).finally(() => self.postMessage({ t: "done" } satisfies WorkerMessage));
      break;
    case "cancel":
      control.cancelled = true;
      // The run ends its stream with CANCEL at its next frame boundary (unthrottled, so it
      // gets there); a write stuck on a peer that stopped reading is cut after a grace.
      writer?.setRateLimit(0);
      setTimeout(() => writer?.shutdown(), CANCEL_GRACE_MS);
      break;
    case "params":
      Object.assign(params, m.params);
      control.paramsChanged = true;
      break;
    case "postcopy":
      control.startPostcopy = true;
      // Precopy is over: its rate limit must not hold the switch (a write waiting for the
      // next 100 ms window would delay it, and the package behind it, by up to 100 ms).
      writer?.setRateLimit(0);
      break;
    case "continue":
      control.continued = true;
      break;
    case "colo-lost-heartbeat":
      control.verdict = m.verdict ?? null;
      control.lostHeartbeat = true;
      break;
    case "colo-checkpoint":
      control.checkpointNow = true;
      break;
    case "colo-records":
      control.onColoRecords?.(m.records);
      break;
    case "auto-converge":
      control.forceAutoConverge = true;
      break;
    case "pause":
      control.pauseRequested = true;
      writer?.shutdown();
      break;
    case "multifd-crash":
      ctx?.onMultifdCrash?.(m.id, m.message);
      break;
    case "resume":
      resumeTls = m.tls;
      control.resumeUri = m.uri;
      break;
    default:
      link?.receive(m);
  }
  control.wake.notify();
};
