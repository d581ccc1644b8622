/**
 * Worker entry for a destination's multifd receive thread: listens on an address of its own,
 * to which the incoming Worker redirects page channels (MULTIFD_REDIRECT). A connection opens
 * with the "FERM" header and MULTIFD_JOIN(token) within the hello timeout; the incoming Worker
 * checks the token (`join`) and, once the main stream claims the channel, says `load`: this
 * thread then reads the channel straight into guest RAM (multifd_channel_reader.ts), as
 * QEMU's multifd receive threads do. The main thread starts this Worker and hands its port
 * to the incoming Worker (codec_threads.ts); every message after `port` goes through it.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { Channel, ChannelListener } from "../ports.ts";
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { FrameReader } from "../wire/frame_reader.ts";
import { FrameType } from "../wire/frames.ts";
import { decodeJoin, encodeJoined } from "../wire/multifd.ts";
import { failureRecord } from "./failure.ts";
import { readPageChannel } from "./multifd_channel_reader.ts";
import { writeAll } from "./channel_io.ts";
import { chCell, chStat, RX, RX_CH, RX_STAT, type RxShared, setCell } from "./multifd_rx_shared.ts";
import { RamLoader } from "./ram_loader.ts";
import { createStats, STAT } from "./stats.ts";

/** From the incoming Worker. */
export type RxCommand =
  | { t: "listen"; uri: string }
  | { t: "load"; conn: number; id: number; guest: SharedGuest; shared: RxShared }
  | { t: "drop"; conn: number }
  /** The JOIN's token was the destination's: answer MULTIFD_JOINED(answer) on it. */
  | { t: "accept"; conn: number; answer: Uint8Array }
  | { t: "stop" };

/** To the incoming Worker. */
export type RxReport =
  | { t: "listening"; uri: string }
  | { t: "listen-failed"; message: string }
  | { t: "join"; conn: number; token: Uint8Array }
  | { t: "rx-error"; conn: number; kind: string; message: string };

/** A connection names itself (header, JOIN) within this (ms), as on the incoming listener. */
const HELLO_TIMEOUT_MS = 10_000;
/** Connections that have not named themselves yet, at most. */
const MAX_UNIDENTIFIED = 64;

let port: MessagePort | null = null;
let listener: ChannelListener | null = null;
let nextConn = 1;
let unidentified = 0;
const held = new Map<number, { channel: Channel; reader: FrameReader }>();

function report(m: RxReport): void {
  port?.postMessage(m);
}

async function listen(uri: string): Promise<void> {
  try {
    listener = await listenChannel(uri);
  } catch (e) {
    report({ t: "listen-failed", message: e instanceof Error ? e.message : String(e) });
    return;
  }
  report({ t: "listening", uri: listener.uri });
  for (;;) {
    let channel: Channel;
    try {
      channel = await listener.accept();
    } catch {
      return; // closed
    }
    identify(channel);
  }
}

async function identify(channel: Channel): Promise<void> {
  if (unidentified >= MAX_UNIDENTIFIED) return channel.close();
  unidentified++;
  const t = setTimeout(() => channel.close(), HELLO_TIMEOUT_MS);
  try {
    const reader = new FrameReader(channel);
    if (await reader.readStreamHeader(null) !== "multifd") throw new Error("not a page channel");
    const f = await reader.next();
    if (f.type !== FrameType.MULTIFD_JOIN) throw new Error("page channel without JOIN");
    const token = decodeJoin(await reader.readPayload());
    const conn = nextConn++;
    held.set(conn, { channel, reader });
    report({ t: "join", conn, token });
  } catch {
    channel.close(); // not a redirected page channel: nothing to fail
  } finally {
    clearTimeout(t);
    unidentified--;
  }
}

async function load(m: Extract<RxCommand, { t: "load" }>): Promise<void> {
  const h = held.get(m.conn);
  if (!h) return;
  const ctl = new Int32Array(m.shared.ctl);
  const stats = new Float64Array(m.shared.stats);
  const own = createStats();
  const ram = new RamLoader(m.guest, own, {
    seen: m.shared.seen,
    advise: {
      get advised() {
        return Atomics.load(ctl, RX.ADVISED) !== 0;
      },
    },
  });
  const counted = () => {
    stats[chStat(m.id, RX_STAT.NORMAL)] = own[STAT.normal];
    stats[chStat(m.id, RX_STAT.DUPLICATE)] = own[STAT.duplicate];
  };
  try {
    await readPageChannel(
      m.id,
      h.reader,
      ram,
      { ctl, stats, channels: m.shared.channels },
      counted,
    );
  } catch (e) {
    // The reason first, then the mark the incoming Worker waits on (it waits for the reason).
    const failure = failureRecord(e);
    if (Atomics.load(ctl, RX.ABORT) === 0) report({ t: "rx-error", conn: m.conn, ...failure });
    setCell(ctl, chCell(m.id, RX_CH.FAILED), 1);
  } finally {
    h.channel.close();
    held.delete(m.conn);
  }
}

/** Says MULTIFD_JOINED on connection `conn` (a failed write closes it: the source goes back). */
async function accept(conn: number, answer: Uint8Array): Promise<void> {
  const h = held.get(conn);
  if (!h) return;
  try {
    await writeAll(h.channel, encodeJoined(answer));
  } catch {
    h.channel.close();
  }
}

function handle(m: RxCommand): void {
  if (m.t === "listen") listen(m.uri);
  else if (m.t === "load") load(m);
  else if (m.t === "accept") accept(m.conn, m.answer);
  else if (m.t === "drop") {
    held.get(m.conn)?.channel.close();
    held.delete(m.conn);
  } else {
    listener?.close();
    for (const h of held.values()) h.channel.close();
    held.clear();
  }
}

self.onmessage = (e: MessageEvent<{ t: "port"; port: MessagePort }>) => {
  if (e.data.t !== "port") return;
  port = e.data.port;
  port.onmessage = (ev: MessageEvent<RxCommand>) => handle(ev.data);
};
