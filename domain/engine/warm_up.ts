/**
 * The data path made hot before a migration needs it: a data-path Worker that waits for its
 * first migration moves a small scratch guest to itself over loopback TCP, through the same
 * code a migration runs (PageSender, staging, ChannelWriter and a socket channel on one end;
 * FrameReader, the RAM section's loader and RamLoader on the other), several passes over it.
 *
 * Why: V8 compiles a function for speed only once it has run a while, on a helper thread, and
 * installs it when done. In a fresh Worker that happens during the migration itself: measured
 * 2026-12-07 (kernel 6.18, 2 vCPUs, a 1 GiB random guest over loopback TCP) with V8's
 * --trace-opt, the page walk, the writer and Deno's socket write path were compiled in the
 * stream's first ~25 ms, and the rest at the switchover; a trace of the scheduler showed those
 * compiles taking a CPU for 1–3.6 ms at a time while the data path or the receiver waited to
 * run. The same source agent's third migration (warm code, a fresh destination) ran at a
 * median of 5.6 GB/s against 5.1 for its first (8 agents). With this warm-up, fresh agents
 * each time, 26 alternating pairs against the code before it: median 4.96 GB/s against 4.74,
 * 18 of 26 pairs faster, means 4.77 against 4.74 (the host's noise is of the same size).
 *
 * What it costs: two scratch guests of WARM_UP_BYTES and ~10–30 ms of one core, once per
 * Worker, while the Worker waits for work (the source's kept-warm Worker, warm_workers.ts; the
 * destination's before it listens). Nothing of it outlives the call but compiled code.
 *
 * @module
 */
import { allocateGuest, fillRandom, type SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { Channel } from "../ports.ts";
import { FrameReader } from "../wire/frame_reader.ts";
import { encodeEof, encodeStreamHeader, FrameType } from "../wire/mod.ts";
import { PageSender } from "./page_sender.ts";
import { RamLoader } from "./ram_loader.ts";
import { RamSectionLoader } from "./ram_section_loader.ts";
import { createStats } from "./stats.ts";

/** Bytes of each scratch guest (2 MiB: 512 pages). */
export const WARM_UP_BYTES = 2 << 20;
/** Passes over the scratch guest: enough for V8 to compile the page walk and the writes. */
export const WARM_UP_PASSES = 48;
/** Pages sent per call, as a migration's passes do (SourceSession's chunk). */
const SEND_PAGES = 256;

/** What a warm-up did. */
export interface WarmUpResult {
  /** Wall-clock milliseconds it took. */
  ms: number;
  /** Bytes it moved through the socket. */
  bytes: number;
  /** Whether the scratch guest arrived whole (it always should: a check on the code warmed). */
  intact: boolean;
}

/**
 * Moves a scratch guest to itself over loopback TCP `passes` times (see the module doc).
 * Rejects only if the loopback socket cannot be opened; the caller goes on without it.
 */
export async function warmUpDataPath(passes = WARM_UP_PASSES): Promise<WarmUpResult> {
  const t0 = performance.now();
  const listener = await listenChannel("tcp:127.0.0.1:0");
  let sending: Channel | null = null;
  let receiving: Channel | null = null;
  try {
    [sending, receiving] = await Promise.all([connectChannel(listener.uri), listener.accept()]);
    const from = scratchGuest(true);
    const into = scratchGuest(false);
    const [bytes] = await Promise.all([send(from, sending, passes), receive(into, receiving)]);
    return { ms: performance.now() - t0, bytes, intact: sameRam(from, into) };
  } finally {
    sending?.close();
    receiving?.close();
    listener.close();
  }
}

/** A scratch guest: random pages with zero ones among them (`filled`), or empty. */
function scratchGuest(filled: boolean): SharedGuest {
  const guest = allocateGuest([{ name: "warm-up", size: WARM_UP_BYTES }], { snapshot: false });
  if (!filled) return guest;
  const words = new Uint32Array(guest.ram[0]);
  fillRandom(words, 0x5eed);
  // Every eighth run of 16 pages zero: the walk meets zero runs as a real guest's does.
  for (let p = 0; p < WARM_UP_BYTES / PAGE_SIZE; p += 128) {
    words.fill(0, (p * PAGE_SIZE) / 4, ((p + 16) * PAGE_SIZE) / 4);
  }
  new Uint8Array(guest.written).fill(1);
  return guest;
}

/** The source's side: every pass sends the whole guest, as the bulk stage does. */
async function send(guest: SharedGuest, channel: Channel, passes: number): Promise<number> {
  const writer = new ChannelWriter(channel);
  const sender = new PageSender(guest, writer);
  const dirty = new Uint8Array(guest.dirty);
  await sender.append(encodeStreamHeader());
  for (let pass = 0; pass < passes; pass++) {
    sender.markAll();
    while (!await sender.send(SEND_PAGES));
    // A dirty-log sync over marks the walk then finds already sent, as later passes do.
    dirty.fill(1, 0, 64);
    sender.sync();
  }
  await sender.append(encodeEof());
  await sender.flush();
  await channel.closeWrite();
  return writer.bytesWritten;
}

/** The destination's side: every frame up to EOF through the RAM section's loader. */
async function receive(guest: SharedGuest, channel: Channel): Promise<void> {
  const reader = new FrameReader(channel);
  const stats = createStats();
  const section = new RamSectionLoader(new RamLoader(guest, stats), stats, 0);
  await reader.readStreamHeader("main");
  for (;;) {
    const frame = await reader.next();
    if (frame.type === FrameType.EOF) return;
    await section.loadState(frame.type, frame.length, reader);
  }
}

function sameRam(a: SharedGuest, b: SharedGuest): boolean {
  const x = new Uint32Array(a.ram[0]);
  const y = new Uint32Array(b.ram[0]);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
