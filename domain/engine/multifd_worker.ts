/**
 * Worker entry for one multifd page channel on the source: connects its own socket,
 * introduces itself (HELLO), then for each pass claims packets of page-count pages from
 * the shared bitmap, sends the dirty ones, and ends the pass with MULTIFD_SYNC.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { connectChannel } from "../../adapters/channels/connect.ts";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import { encodeEof, encodeStreamHeader, FrameType } from "../wire/mod.ts";
import { encodeHello } from "../wire/multifd.ts";
import { encodeU32Frame } from "../wire/postcopy.ts";
import { MF, MF_STAT, type MultifdShared } from "./multifd_shared.ts";
import { PageSender } from "./page_sender.ts";

/** Starts one channel. */
export interface MultifdChannelStart {
  t: "start";
  uri: string;
  guest: SharedGuest;
  shared: MultifdShared;
  id: number;
  channels: number;
  pageCount: number;
  uuid: Uint8Array;
  rateLimit: number;
  tls?: TlsChannelOptions;
}

let writer: ChannelWriter | null = null;

async function run(m: MultifdChannelStart): Promise<void> {
  const ctl = new Int32Array(m.shared.ctl);
  const stats = new Float64Array(m.shared.stats);
  const base = m.id * 4;
  const channel = await connectChannel(m.uri, { tls: m.tls });
  writer = new ChannelWriter(channel, { rateLimit: m.rateLimit });
  const w = writer;
  const sender = new PageSender(m.guest, w, m.shared.bitmap);
  const last = m.guest.layout[m.guest.layout.length - 1];
  const total = last.firstPage + last.pages;
  await sender.append(encodeStreamHeader("multifd"));
  await sender.append(encodeHello({ uuid: m.uuid, id: m.id, channels: m.channels }));
  await sender.flush();
  Atomics.add(ctl, MF.READY, 1);
  Atomics.notify(ctl, MF.READY);
  let gen = 0;
  for (;;) {
    while (Atomics.load(ctl, MF.GEN) === gen && Atomics.load(ctl, MF.STOP) === 0) {
      const r = Atomics.waitAsync(ctl, MF.GEN, gen, 1000);
      if (r.async) await r.value;
    }
    if (Atomics.load(ctl, MF.STOP) !== 0) break;
    gen = Atomics.load(ctl, MF.GEN);
    for (;;) {
      const packet = Atomics.add(ctl, MF.CURSOR, 1);
      const first = packet * m.pageCount;
      if (first >= total) break;
      await sender.sendRange(first, m.pageCount);
      stats[base + MF_STAT.bytes] = w.bytesWritten;
      stats[base + MF_STAT.normal] = sender.normal;
      stats[base + MF_STAT.duplicate] = sender.duplicate;
    }
    await sender.append(encodeU32Frame(FrameType.MULTIFD_SYNC, gen));
    await sender.flush();
    stats[base + MF_STAT.bytes] = w.bytesWritten;
    Atomics.add(ctl, MF.DONE, 1);
    Atomics.notify(ctl, MF.DONE);
  }
  await sender.append(encodeEof());
  await sender.flush();
  stats[base + MF_STAT.bytes] = w.bytesWritten;
  await channel.closeWrite().catch(() => {});
  channel.close();
}

self.onmessage = (
  e: MessageEvent<MultifdChannelStart | { t: "rate"; rate: number } | { t: "shutdown" }>,
) => {
  const m = e.data;
  if (m.t === "start") {
    run(m).then(
      () => self.postMessage({ t: "done" }),
      (err) => {
        const ctl = new Int32Array(m.shared.ctl);
        Atomics.add(ctl, MF.FAILED, 1);
        Atomics.notify(ctl, MF.DONE);
        Atomics.notify(ctl, MF.READY);
        self.postMessage({
          t: "error",
          message: `multifd channel ${m.id}: ${err instanceof Error ? err.message : err}`,
        });
      },
    );
  } else if (m.t === "rate") {
    writer?.setRateLimit(m.rate);
  } else {
    writer?.shutdown();
  }
};
