/**
 * Worker entry for an outgoing migration: connects, runs the migration, reports back.
 * Started by `domain/outgoing.ts`; see `messages.ts` for the protocol.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { connectChannel } from "../../adapters/channels/connect.ts";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { MainLink } from "./main_link.ts";
import type { MainMessage, SourceStart, WorkerMessage } from "./messages.ts";
import { runSource } from "./source_run.ts";

let link: MainLink | null = null;
let writer: ChannelWriter | null = null;
let cancelled = false;
const params = { maxBandwidth: 0, downtimeLimit: 300 };

self.onmessage = (e: MessageEvent<SourceStart | MainMessage>) => {
  const m = e.data;
  if (m.t === "start") {
    Object.assign(params, m.params);
    link = new MainLink(m.status, (msg: WorkerMessage) => self.postMessage(msg));
    runSource({
      guest: m.guest,
      stats: m.stats,
      link,
      params,
      connect: () => connectChannel(m.uri),
      onWriter: (w) => {
        writer = w;
        if (cancelled) w?.shutdown();
      },
    }).finally(() => self.postMessage({ t: "done" } satisfies WorkerMessage));
  } else if (m.t === "cancel") {
    cancelled = true;
    writer?.shutdown();
  } else if (m.t === "params") {
    Object.assign(params, m.params);
    writer?.setRateLimit(params.maxBandwidth);
  } else {
    link?.receive(m);
  }
};
