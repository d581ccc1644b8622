/**
 * Worker entry for incoming migrations: listens on the URI, runs each accepted stream,
 * and re-arms after a failed one (the agent accepts the next migration) until one
 * completes. migrate-recover listens on a new URI and hands the paused run its channel;
 * migrate-pause shuts the current channel. See `messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { ColoControl } from "./dest_colo.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { Channel, ChannelListener } from "../ports.ts";
import { MainLink } from "./main_link.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import type { DestinationStart, MainMessage, WorkerMessage } from "./messages.ts";
import { runDestination } from "./dest_run.ts";
import { isTwoWayUri } from "./peer_reason.ts";
import { MultifdRegistry } from "./multifd_dest.ts";
import { ReceivePool, stayHere } from "./multifd_rx_pool.ts";
import { FrameReader } from "../wire/frame_reader.ts";
import { FrameType } from "../wire/frames.ts";
import { decodeHello } from "../wire/multifd.ts";
import { failureKind } from "./failure.ts";
import { GuardedChannel } from "./link_watch.ts";
import { useParentCodecThreads } from "../codecs/codec_threads.ts";
import { IdleWarmUp } from "./warm_up.ts";

let link: MainLink | null = null;
let listener: ChannelListener | null = null;
let current: Channel | null = null;
let recovery: { resolve: (ch: Channel) => void } | null = null;
const pendingRecovery: Channel[] = [];
const registry = new MultifdRegistry();
/** Receive threads for page channels (a plain TCP or unix listener only). */
let rxPool: ReceivePool | null = null;
/** x-multifd went on before the listener was up: receive threads for this many channels. */
let prepared: number | null = null;
let tlsOpts: TlsChannelOptions | undefined;
let running = false;
let attempts = 0;
let listenerClosed = false;
let finished = false;
/** A new connection names itself (stream header, multifd HELLO) within this (ms). */
const HELLO_TIMEOUT_MS = 10_000;
/**
 * Connections that have not named themselves yet, at most: more are closed at once (each costs
 * a small reader buffer until it does; see FIRST_READER_BUFFER).
 */
export const MAX_UNIDENTIFIED = 64;
let unidentified = 0;
/** x-colo and lost-heartbeat for the run that becomes COLO's secondary. */
let coloControl: ColoControl | null = null;
/** This Worker's warm-up (warm_up.ts): a run that comes stops it (the source is waiting). */
const warmUp = new IdleWarmUp();

function awaitRecovery(): Promise<Channel> {
  const ready = pendingRecovery.shift();
  if (ready) return Promise.resolve(ready);
  return new Promise((resolve) => (recovery = { resolve }));
}

async function recover(uri: string): Promise<void> {
  let l: ChannelListener;
  try {
    l = await listenChannel(uri, { tls: tlsOpts });
  } catch (e) {
    link?.post({ t: "recover-failed", message: e instanceof Error ? e.message : String(e) });
    return;
  }
  link?.post({ t: "listening", uri: l.uri });
  try {
    const ch = await l.accept();
    if (recovery) {
      recovery.resolve(ch);
      recovery = null;
    } else pendingRecovery.push(ch);
  } catch {
    /* closed */
  } finally {
    l.close();
  }
}

/** Classifies a new connection: a main stream starts a run, a page channel waits for one. */
async function dispatch(m: DestinationStart, accepted: Channel): Promise<void> {
  // Guarded from the start: the run that takes this channel watches it for a dead peer.
  const channel = new GuardedChannel(accepted);
  if (unidentified >= MAX_UNIDENTIFIED) {
    channel.close(); // a flood of connections that say nothing
    return;
  }
  const reader = new FrameReader(channel);
  let refused: Error | undefined;
  unidentified++;
  const t = setTimeout(() => channel.close(), HELLO_TIMEOUT_MS);
  try {
    if (await reader.readStreamHeader(null) === "multifd") {
      const f = await reader.next();
      if (f.type !== FrameType.MULTIFD_HELLO) throw new Error("multifd channel without HELLO");
      const hello = decodeHello(await reader.readPayload());
      if (hello.redirectable) {
        // To a receive thread of its own; without one the answer is to stay on this connection.
        const redirected = rxPool ? await rxPool.answer(hello, channel) : await stayHere(channel);
        if (redirected) return;
      }
      registry.offer(hello, channel, reader);
      return;
    }
  } catch (e) {
    if (failureKind(e) !== "protocol") {
      channel.close(); // a probe, or too slow to say anything: not an attempt
      return;
    }
    refused = e as Error; // something that is not a Ferry stream: that attempt fails, visibly
  } finally {
    clearTimeout(t);
    unidentified--;
  }
  if (running || finished) {
    channel.close(); // one incoming migration at a time
    return;
  }
  running = true;
  // The failed attempt stays visible (query-migrate says failed) until the next one comes.
  if (attempts++ > 0) link!.post({ t: "rearm" });
  const ctx = {
    guest: m.guest,
    stats: m.stats,
    link: link!,
    autostart: m.autostart,
    decompressThreads: m.decompressThreads,
    linkTimeoutMs: m.linkTimeoutMs,
    arrivalDigest: m.arrivalDigest,
    colo: coloControl ??= new ColoControl(m.colo, m.coloArbiter),
    awaitRecovery,
    onChannel: (ch: Channel | null) => (current = ch),
    multifd: registry,
    twoWay: isTwoWayUri(m.uri),
  };
  await warmUp.runCame();
  const ok = await runDestination(ctx, channel, reader, refused);
  running = false;
  if (ok) {
    finished = true;
    listenerClosed = true;
    listener?.close();
    registry.close();
    rxPool?.close();
  }
}

async function serve(m: DestinationStart): Promise<void> {
  link = new MainLink(m.status, (msg: WorkerMessage) => self.postMessage(msg));
  warmUp.start(m.guest, true); // while it waits for a source
  try {
    tlsOpts = m.tls;
    listener = await listenChannel(m.uri, { tls: m.tls });
  } catch (e) {
    link.post({ t: "error", message: e instanceof Error ? e.message : String(e) });
    await link.transition("setup", "failed");
    return;
  }
  link.post({ t: "listening", uri: listener.uri });
  if (!m.tls && isTwoWayUri(listener.uri)) {
    rxPool = new ReceivePool(listener.uri, registry);
    if (prepared !== null) rxPool.prepare(prepared);
  }
  const runs = new Set<Promise<void>>();
  for (;;) {
    let channel;
    try {
      channel = await listener.accept();
    } catch (e) {
      if (listenerClosed) break;
      // One peer failed (e.g. a TLS handshake refused): keep listening for the next.
      link.post({
        t: "notice",
        message: `incoming connection refused: ${e instanceof Error ? e.message : e}`,
      });
      continue;
    }
    const run: Promise<void> = dispatch(m, channel).finally(() => runs.delete(run));
    runs.add(run);
  }
  await Promise.all(runs);
}

/** The decompression pool gets its Workers from the main thread (nested ones start slowly). */
const codecAnswer = useParentCodecThreads((m) => self.postMessage(m satisfies WorkerMessage));

self.onmessage = (e: MessageEvent<DestinationStart | MainMessage>) => {
  const m = e.data;
  if (codecAnswer(m)) return;
  if (m.t === "start") {
    serve(m).finally(() => self.postMessage({ t: "done" } satisfies WorkerMessage));
  } else if (m.t === "stop") {
    listenerClosed = true;
    listener?.close();
    registry.close();
    rxPool?.close();
  } else if (m.t === "multifd-prepare") {
    if (rxPool) rxPool.prepare(m.channels);
    else prepared = m.channels;
  } else if (m.t === "pause") {
    current?.close();
  } else if (m.t === "colo-lost-heartbeat") {
    coloControl?.requestLostHeartbeat(m.verdict);
  } else if (m.t === "colo-output") {
    coloControl?.onOutput?.(m.seq, m.digest);
  } else if (m.t === "recover") {
    recover(m.uri);
  } else {
    link?.receive(m);
  }
};
