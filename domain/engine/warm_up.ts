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
 * each time, against the code before it: a first version (plain scratch guests, no message
 * posted first) 26 alternating pairs, median 4.96 GB/s against 4.74, 18 of 26 pairs faster,
 * means 4.77 against 4.74; this one, 10 rounds of three: median 4.90 GB/s, the first version
 * 4.75, none 4.77 (means 4.86, 4.81, 4.71). The host's noise is of the same size.
 *
 * Compiled code is thrown away when what it was compiled for changes, so the warm-up sees what
 * the migration will (both measured with V8's --trace-deopt in a Worker, 2026-12-07):
 * - the scratch guests have the real guest's shape: its keys, in its order, each arrived through
 *   the structured clone a start message takes. With an object of another shape the page walk
 *   was thrown away at the migration's first pages ("dependent field type constness changed").
 * - a message is posted (on a MessageChannel of its own) before anything runs: a Worker's first
 *   postMessage changed a prototype chain every compiled function of the data path depended on,
 *   and all of them were thrown away at the run's first message to the main thread.
 *
 * What it costs: two scratch guests of WARM_UP_BYTES and ~20–40 ms of one core, once per
 * Worker, while the Worker waits for work (the source's kept-warm Worker, warm_workers.ts; the
 * destination's before it listens). Nothing of it outlives the call but compiled code.
 *
 * @module
 */
import { allocateGuest, fillRandom, type SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { Channel } from "../ports.ts";
import { FrameReader } from "../wire/frame_reader.ts";
import { encodeEof, encodeStreamHeader, FrameType } from "../wire/mod.ts";
import { PageSender } from "./page_sender.ts";
import { RamLoader } from "./ram_loader.ts";
import { RamSectionLoader } from "./ram_section_loader.ts";
import { createStats } from "./stats.ts";
import { DEFAULT_LINK_TIMEOUT_MS, GuardedChannel } from "./link_watch.ts";
import { SourceLink } from "./source_link.ts";

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
export async function warmUpDataPath(
  like?: SharedGuest,
  passes = WARM_UP_PASSES,
): Promise<WarmUpResult> {
  const t0 = performance.now();
  const mc = new MessageChannel();
  mc.port1.postMessage(0);
  mc.port1.close();
  mc.port2.close();
  const listener = await listenChannel("tcp:127.0.0.1:0");
  let sending: SourceLink | null = null;
  let receiving: Channel | null = null;
  try {
    // Both ends as a migration has them: the source's link (its guarded channel and writer),
    // the destination's guarded channel (dest_worker.ts).
    [sending, receiving] = await Promise.all([
      SourceLink.open(() => connectChannel(listener.uri), {
        timeoutMs: DEFAULT_LINK_TIMEOUT_MS,
        rateLimit: 0,
        answers: false,
      }),
      listener.accept().then((ch) => new GuardedChannel(ch)),
    ]);
    const from = scratchGuest(true, like);
    const into = scratchGuest(false, like);
    const [bytes] = await Promise.all([send(from, sending, passes), receive(into, receiving)]);
    return { ms: performance.now() - t0, bytes, intact: sameRam(from, into) };
  } finally {
    sending?.close();
    receiving?.close();
    listener.close();
  }
}

/**
 * A scratch guest shaped like `like` (its keys in its order; where the scratch has no value of
 * its own, `like`'s, which nothing here reads), as a start message would deliver it: random
 * pages with zero ones among them (`filled`), or empty. A WebAssembly guest's memory is a
 * growable buffer no scratch guest has; it gets a plain one.
 */
export function scratchGuest(filled: boolean, like?: SharedGuest): SharedGuest {
  const own = allocateGuest([{ name: "warm-up", size: WARM_UP_BYTES }], { snapshot: false });
  let guest = own;
  if (like && !like.wasm) {
    const shaped: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(like)) {
      shaped[k] = k in own ? own[k as keyof SharedGuest] : v;
    }
    guest = structuredClone(shaped) as unknown as SharedGuest;
  }
  if (!filled) return guest;
  const words = new Uint32Array(guest.ram[0]);
  fillRandom(words, 0x5eed);
  // Zero runs among the pages, as a real guest has: in the first half one page in 16 (short
  // runs of pages: many writes for few bytes, so the writes get hot too), in the second half
  // 16 pages in 128.
  const pages = WARM_UP_BYTES / PAGE_SIZE;
  const zero = (p: number, n: number) =>
    words.fill(0, (p * PAGE_SIZE) / 4, ((p + n) * PAGE_SIZE) / 4);
  for (let p = 0; p < pages / 2; p += 16) zero(p, 1);
  for (let p = pages / 2; p < pages; p += 128) zero(p, 16);
  new Uint8Array(guest.written).fill(1);
  return guest;
}

/** The source's side: every pass sends the whole guest, as the bulk stage does. */
async function send(guest: SharedGuest, link: SourceLink, passes: number): Promise<number> {
  const writer = link.writer;
  const sender = new PageSender(guest, writer);
  // As a session sets it (source_session.ts): a field set after construction is compiled as
  // one that may change; left alone here, the page walk was thrown away when the session did.
  sender.encoder = null;
  const dirty = new Uint8Array(guest.dirty);
  const pages = WARM_UP_BYTES / PAGE_SIZE;
  await sender.append(encodeStreamHeader());
  for (let pass = 0; pass < passes; pass++) {
    // The bulk stage: every page.
    sender.markAll();
    while (!await sender.send(SEND_PAGES));
    // A later pass: what a dirty-log sync found, scattered pages and a short run.
    for (let p = 3; p < pages; p += 37) dirty[p] = 1;
    dirty.fill(1, 200, 220);
    sender.sync();
    while (!await sender.send(SEND_PAGES));
  }
  await sender.append(encodeEof());
  await sender.flush();
  await link.channel.closeWrite();
  return writer.bytesWritten;
}

/** The destination's side: every frame up to EOF through the RAM section's loader. */
async function receive(guest: SharedGuest, channel: Channel): Promise<void> {
  const reader = new FrameReader(channel);
  reader.coalesceUs = 0; // as a destination's run sets it (dest_run.ts)
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
