/**
 * The data path made hot before a migration needs it: a data-path Worker that waits for its
 * first migration moves a small scratch guest to itself over loopback TCP, through the same
 * code a migration runs (PageSender, staging, ChannelWriter and a socket channel on one end;
 * FrameReader, the RAM section's loader and RamLoader on the other), several passes over it.
 *
 * Why: V8 compiles a function for speed only once it has run a while, on a helper thread, and
 * installs it when done. In a fresh Worker that happens during the migration itself. Measured
 * 2026-12-07 (kernel 6.18, 2 vCPUs, a 1 GiB random idle guest over loopback TCP, V8's
 * --trace-opt, and `perf` of the scheduler against a raw sink's clock):
 * - the page walk (PageSender's #sendBetween) reaches V8's optimizing tier (TurboFan) around
 *   the switchover; its compile takes 12–33 ms of a helper thread. That helper held the CPU the
 *   data path had run on, in slices of 2–4 ms, while the other CPU sat idle and the data path
 *   waited to run: the stream stopped for 3–7 ms three or four times in the 20 ms after the
 *   switchover (a raw sender: no such gap).
 * - the writer, Deno's socket write path and the rest were compiled in the stream's first 25 ms.
 * So the warm-up runs until the page walk has reached TurboFan (28 passes did in a test, 24 did
 * not; it takes WARM_UP_PASSES), over a guest mostly never written, whose pages cost the walk's
 * work but neither memory nor socket bytes. Then no function of the data path was compiled for
 * TurboFan during a migration; a Ferry source into a raw sink ran as a raw sender did (5.86,
 * 5.47, 5.32 GB/s against 5.81, 5.55, 5.10, alternating). The Ferry pair, fresh agents each
 * time, 12 rounds of three on a noisy hour: median 4.46 GB/s with this warm-up, 4.46 with one
 * of 120 passes over 2 MiB (TurboFan too, 244 MB moved), 3.89 with 48 passes over 2 MiB (no
 * TurboFan; means 4.29, 4.33, 3.87); an earlier 10 rounds, 120 passes against 48: 5.16 against
 * 4.59. Against no warm-up at all the 48-pass one had gained 3–5 % (medians of 26 pairs).
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
 * What it costs, once per Worker, while it waits for work (the source's kept-warm Worker,
 * warm_workers.ts; the destination's before it listens): two scratch guests of WARM_UP_SPAN,
 * WARM_UP_BYTES of each touched, ~60–70 ms of one core and ~97 MB through a loopback socket, and
 * the compiles on V8's helper threads (the page walk's TurboFan compile, 17–33 ms). Nothing of it
 * outlives the call but compiled code.
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

/** Bytes of each scratch guest that hold data (2 MiB: 512 pages). */
export const WARM_UP_BYTES = 2 << 20;
/**
 * Bytes of each scratch guest in all: past WARM_UP_BYTES its pages were never written, so the
 * walk finds them zero without reading them (the bulk stage of an idle guest's untouched RAM)
 * and they cost neither memory nor socket bytes, only the walk's own work.
 */
export const WARM_UP_SPAN = 32 << 20;
/** Passes over the scratch guest: enough for V8 to compile the page walk for TurboFan. */
export const WARM_UP_PASSES = 48;
/** Pages per send call: fewer than a pass's chunk (ram_section.ts), so the calls get hot too. */
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
 * Moves a scratch guest to itself over loopback TCP `passes` times (see the module doc), or
 * fewer: once `stop()` says so (a migration came), it ends after the pass under way (~1 ms).
 * Rejects only if the loopback socket cannot be opened; the caller goes on without it.
 */
export async function warmUpDataPath(
  like?: SharedGuest,
  passes = WARM_UP_PASSES,
  stop: () => boolean = () => false,
): Promise<WarmUpResult> {
  const t0 = performance.now();
  // A Worker's first message changes a prototype chain compiled code depends on (module doc).
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
    const [bytes] = await Promise.all([
      send(from, sending, passes, stop),
      receive(into, receiving),
    ]);
    return { ms: performance.now() - t0, bytes, intact: sameRam(from, into) };
  } finally {
    sending?.close();
    receiving?.close();
    listener.close();
  }
}

/**
 * A Worker's warm-up while it waits for its run (one per Worker): started once, and what a run
 * that comes awaits first.
 */
export class IdleWarmUp {
  #done: Promise<unknown> = Promise.resolve();
  #runCame = false;

  /**
   * Starts it on scratch guests shaped like `like`. With `yieldToRun` (a destination's, a page
   * channel's: their peer waits), a run that comes stops it after the pass under way; without
   * (a source's, not connected yet), the run waits for all of it. Without a loopback socket the
   * run goes on cold: nothing else depends on it.
   */
  start(like: SharedGuest | undefined, yieldToRun: boolean): void {
    const stop = () => yieldToRun && this.#runCame;
    this.#done = warmUpDataPath(like, WARM_UP_PASSES, stop).catch(() => {});
  }

  /** A run came: resolves once it may start. */
  runCame(): Promise<unknown> {
    this.#runCame = true;
    return this.#done;
  }
}

/**
 * A scratch guest shaped like `like` (its keys in its order; where the scratch has no value of
 * its own, `like`'s, which nothing here reads), as a start message would deliver it: random
 * pages with zero ones among them (`filled`), or empty. A WebAssembly guest's memory is a
 * growable buffer no scratch guest has; it gets a plain one.
 */
export function scratchGuest(filled: boolean, like?: SharedGuest): SharedGuest {
  const own = allocateGuest([{ name: "warm-up", size: WARM_UP_SPAN }], { snapshot: false });
  let guest = own;
  if (like && !like.wasm) {
    const shaped: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(like)) {
      shaped[k] = k in own ? own[k as keyof SharedGuest] : v;
    }
    guest = structuredClone(shaped) as unknown as SharedGuest;
  }
  if (!filled) return guest;
  const words = new Uint32Array(guest.ram[0], 0, WARM_UP_BYTES / 4);
  fillRandom(words, 0x5eed);
  // Zero runs among the pages, as a real guest has: in the first half one page in 16 (short
  // runs of pages: many writes for few bytes, so the writes get hot too), in the second half
  // 16 pages in 128.
  const pages = WARM_UP_BYTES / PAGE_SIZE;
  const zero = (p: number, n: number) =>
    words.fill(0, (p * PAGE_SIZE) / 4, ((p + n) * PAGE_SIZE) / 4);
  for (let p = 0; p < pages / 2; p += 16) zero(p, 1);
  for (let p = pages / 2; p < pages; p += 128) zero(p, 16);
  new Uint8Array(guest.written).fill(1, 0, pages);
  return guest;
}

/** The source's side: every pass sends the whole guest, as the bulk stage does. */
async function send(
  guest: SharedGuest,
  link: SourceLink,
  passes: number,
  stop: () => boolean,
): Promise<number> {
  const writer = link.writer;
  const sender = new PageSender(guest, writer);
  // As a session sets it (source_session.ts): a field set after construction is compiled as
  // one that may change; left alone here, the page walk was thrown away when the session did.
  sender.encoder = null;
  const dirty = new Uint8Array(guest.dirty);
  const pages = WARM_UP_BYTES / PAGE_SIZE;
  await sender.append(encodeStreamHeader());
  for (let pass = 0; pass < passes && !stop(); pass++) {
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
  const x = new Uint32Array(a.ram[0], 0, WARM_UP_BYTES / 4);
  const y = new Uint32Array(b.ram[0], 0, WARM_UP_BYTES / 4);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return false;
  return true;
}
