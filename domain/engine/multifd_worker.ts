/**
 * Worker entry for one multifd page channel on the source: connects its own socket,
 * introduces itself (HELLO), then for each pass claims packets of page-count pages from
 * the shared bitmap, sends the dirty ones, and ends the pass with MULTIFD_SYNC.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { encodeEof, FrameType } from "../wire/mod.ts";
import { openPageChannel } from "./multifd_redirect.ts";
import { encodeU32Frame } from "../wire/postcopy.ts";
import { MF, MF_STAT, type MultifdChannelStart } from "./multifd_shared.ts";
import { PageSender } from "./page_sender.ts";
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { failureRecord } from "./failure.ts";
import { IdleWarmUp } from "./warm_up.ts";

let writer: ChannelWriter | null = null;

/**
 * Fewest pages a channel claims at once: 1024 (4 MiB, one PAGE_RUN of MAX_RUN_PAGES). Measured
 * 2026-12-07 (1 GiB random guest, 2 channels over unix sockets, 4 alternating pairs): 5.0–5.5
 * GB/s against 4.8–5.2 with 256-page claims (each claim ends in a flush of the channel's staging,
 * and its runs are no longer than the claim). A postcopy switch waits for the claims under way:
 * ~2 ms at these rates.
 */
const CLAIM_PAGES = 1024;

async function run(m: MultifdChannelStart): Promise<void> {
  const ctl = new Int32Array(m.shared.ctl);
  const stats = new Float64Array(m.shared.stats);
  const base = m.id * 4;
  const opened = await openPageChannel(
    m.uri,
    { uuid: m.uuid, id: m.id, channels: m.channels },
    {
      tls: m.tls,
      timeoutMs: m.linkTimeoutMs,
      rateLimit: m.rateLimit,
      onFallback: (why) => console.error(JSON.stringify({ level: "warn", msg: why })),
    },
  );
  const link = opened.link;
  const before = opened.bytesBefore; // bytes on connections the channel left count too
  writer = link.writer;
  const w = writer;
  const sender = new PageSender(m.guest, w, m.shared.bitmap, m.shared.sent);
  const last = m.guest.layout[m.guest.layout.length - 1];
  const total = last.firstPage + last.pages;
  Atomics.add(ctl, MF.READY, 1);
  Atomics.notify(ctl, MF.READY);
  const batch = Math.max(1, Math.floor(CLAIM_PAGES / m.pageCount));
  let gen = 0;
  for (;;) {
    while (Atomics.load(ctl, MF.GEN) === gen && Atomics.load(ctl, MF.STOP) === 0) {
      const r = Atomics.waitAsync(ctl, MF.GEN, gen, 1000);
      if (r.async) await r.value;
    }
    if (Atomics.load(ctl, MF.STOP) !== 0) break;
    gen = Atomics.load(ctl, MF.GEN);
    for (;;) {
      // Postcopy is starting: what nobody claimed yet goes on the main channel instead.
      if (Atomics.load(ctl, MF.CUT) !== 0) break;
      // Claim whole packets, but at least CLAIM_PAGES pages at a time: a 16-page packet
      // (64 KiB) per write halves the throughput of a channel.
      const packet = Atomics.add(ctl, MF.CURSOR, batch);
      const first = packet * m.pageCount;
      if (first >= total) break;
      await sender.sendRange(first, batch * m.pageCount);
      stats[base + MF_STAT.bytes] = before + w.bytesWritten;
      stats[base + MF_STAT.normal] = sender.normal;
      stats[base + MF_STAT.duplicate] = sender.duplicate;
    }
    await sender.append(encodeU32Frame(FrameType.MULTIFD_SYNC, gen));
    await sender.flush();
    stats[base + MF_STAT.bytes] = before + w.bytesWritten;
    Atomics.add(ctl, MF.DONE, 1);
    Atomics.notify(ctl, MF.DONE);
  }
  await sender.append(encodeEof());
  await sender.flush();
  stats[base + MF_STAT.bytes] = before + w.bytesWritten;
  await link.channel.closeWrite().catch(() => {});
  link.close();
}

type ChannelMessage =
  | MultifdChannelStart
  | { t: "rate"; rate: number }
  | { t: "shutdown" }
  | { t: "port"; port: MessagePort }
  | { t: "warm-up"; guest?: SharedGuest };

/** This Worker's warm-up (warm_up.ts): a run that comes stops it (the destination waits). */
const warmUp = new IdleWarmUp();

/** Replies go to the port the source Worker holds, when the main thread started us. */
let reply: (m: unknown) => void = (m) => self.postMessage(m);

function handle(m: ChannelMessage): void {
  if (m.t === "port") {
    const port = m.port;
    reply = (x) => port.postMessage(x);
    port.onmessage = (e: MessageEvent<ChannelMessage>) => handle(e.data);
    return;
  }
  if (m.t === "warm-up") {
    warmUp.start(m.guest, true); // started ahead by the main thread (warm_workers.ts)
    return;
  }
  if (m.t === "start") {
    warmUp.runCame().then(() => run(m)).then(
      () => reply({ t: "done" }),
      (err) => {
        // The reason first, then the mark that wakes the source (which waits for the reason).
        const failure = failureRecord(err);
        reply({ t: "error", ...failure, message: `multifd channel ${m.id}: ${failure.message}` });
        const ctl = new Int32Array(m.shared.ctl);
        Atomics.add(ctl, MF.FAILED, 1);
        Atomics.notify(ctl, MF.DONE);
        Atomics.notify(ctl, MF.READY);
      },
    );
  } else if (m.t === "rate") {
    writer?.setRateLimit(m.rate);
  } else {
    writer?.shutdown();
  }
}

self.onmessage = (e: MessageEvent<ChannelMessage>) => handle(e.data);
