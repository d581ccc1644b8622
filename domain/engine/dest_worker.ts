/**
 * Worker entry for incoming migrations: listens on the URI, runs each accepted stream,
 * and re-arms after a failed one (the agent accepts the next migration) until one
 * completes. migrate-recover listens on a new URI and hands the paused run its channel;
 * migrate-pause shuts the current channel. See `messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { Channel, ChannelListener } from "../ports.ts";
import { MainLink } from "./main_link.ts";
import type { DestinationStart, MainMessage, WorkerMessage } from "./messages.ts";
import { runDestination } from "./dest_run.ts";

let link: MainLink | null = null;
let listener: ChannelListener | null = null;
let current: Channel | null = null;
let recovery: { resolve: (ch: Channel) => void } | null = null;
const pendingRecovery: Channel[] = [];

function awaitRecovery(): Promise<Channel> {
  const ready = pendingRecovery.shift();
  if (ready) return Promise.resolve(ready);
  return new Promise((resolve) => (recovery = { resolve }));
}

async function recover(uri: string): Promise<void> {
  let l: ChannelListener;
  try {
    l = await listenChannel(uri);
  } catch (e) {
    link?.post({ t: "error", message: `migrate-recover: ${e instanceof Error ? e.message : e}` });
    link?.post({ t: "recover-failed" });
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

async function serve(m: DestinationStart): Promise<void> {
  link = new MainLink(m.status, (msg: WorkerMessage) => self.postMessage(msg));
  try {
    listener = await listenChannel(m.uri);
  } catch (e) {
    link.post({ t: "error", message: e instanceof Error ? e.message : String(e) });
    await link.transition("setup", "failed");
    return;
  }
  link.post({ t: "listening", uri: listener.uri });
  for (;;) {
    let channel;
    try {
      channel = await listener.accept();
    } catch {
      return; // listener closed
    }
    const ctx = {
      guest: m.guest,
      stats: m.stats,
      link,
      autostart: m.autostart,
      awaitRecovery,
      onChannel: (ch: Channel | null) => (current = ch),
    };
    if (await runDestination(ctx, channel)) break;
    link.post({ t: "rearm" });
  }
  listener.close();
}

self.onmessage = (e: MessageEvent<DestinationStart | MainMessage>) => {
  const m = e.data;
  if (m.t === "start") {
    serve(m).finally(() => self.postMessage({ t: "done" } satisfies WorkerMessage));
  } else if (m.t === "stop") {
    listener?.close();
  } else if (m.t === "pause") {
    current?.close();
  } else if (m.t === "recover") {
    recover(m.uri);
  } else {
    link?.receive(m);
  }
};
