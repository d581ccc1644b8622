/**
 * The incoming Worker's multifd receive threads: Workers the main thread starts on the first
 * page channel that allows a redirect, each listening on an address of its own next to the
 * incoming one (TCP: the same host, a new port; unix: PATH.rxN). A redirectable HELLO is
 * answered with MULTIFD_REDIRECT to one of them and a one-time token; the channel's JOIN on
 * its new connection hands it to the multifd registry as a {@link RemoteChannel}, and the run
 * that claims it has that thread read it into guest RAM. Without threads (no plain TCP or unix
 * listener, none could be started or listen) the answer is "stay": the channel is read here.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { writeAll } from "./channel_io.ts";
import { type ThreadPorts, threadPorts } from "../codecs/codec_threads.ts";
import { formatMigrationUri, parseMigrationUri } from "../../adapters/channels/uri.ts";
import { encodeRedirect, encodeStay, type MultifdHello, uuidText } from "../wire/multifd.ts";
import type { MultifdRegistry } from "./multifd_dest.ts";
import type { RxCommand, RxReport } from "./multifd_rx_worker.ts";

/** A redirect not followed within this (ms) is forgotten (the registry's hold time). */
const REDIRECT_HOLD_MS = 10_000;
/** How long a new receive thread may take to say it listens (ms). */
const LISTEN_WAIT_MS = 10_000;
/** Most receive threads. */
const MAX_THREADS = 8;

/** Answers a redirectable HELLO with "stay on this connection" (no receive thread for it). */
export async function stayHere(channel: Channel): Promise<false> {
  await writeAll(channel, encodeStay());
  return false;
}

/** One receive thread as the incoming Worker sees it. */
class RxThread {
  readonly port: MessagePort;
  readonly uri: string;
  /** The channels it reads for a run, by connection: who hears their failure. */
  readonly failures = new Map<number, (kind: string, message: string) => void>();

  constructor(port: MessagePort, uri: string) {
    this.port = port;
    this.uri = uri;
  }

  post(m: RxCommand): void {
    this.port.postMessage(m);
  }
}

/** A page channel that a receive thread holds and reads (see the module doc). */
export class RemoteChannel implements Channel {
  readonly thread: RxThread;
  readonly conn: number;
  #closed = false;

  constructor(thread: RxThread, conn: number) {
    this.thread = thread;
    this.conn = conn;
  }

  /** Not read here: its thread reads it. */
  read(): Promise<number | null> {
    return Promise.reject(new Error("a receive thread's page channel is read there"));
  }

  /** Nothing is written to a page channel. */
  write(): Promise<number> {
    return Promise.reject(new Error("a receive thread's page channel is not written"));
  }

  /** Nothing is written to a page channel. */
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }

  /** Its thread closes it (and stops reading it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.thread.failures.delete(this.conn);
    this.thread.post({ t: "drop", conn: this.conn });
  }
}

/** Starts `threads` receive Workers and hands their ports over; null where none can start. */
export type RxSpawn = (threads: number, onCrash: (message: string) => void) => ThreadPorts | null;

/** The incoming Worker's way: the main thread starts them (codec_threads.ts). */
const parentSpawn: RxSpawn = (threads, onCrash) => threadPorts("multifd-rx", threads, onCrash);

/** The receive threads of one incoming Worker (see the module doc). */
export class ReceivePool {
  readonly #listenUri: string;
  readonly #registry: MultifdRegistry;
  readonly #spawnThreads: RxSpawn;
  #threads: Promise<RxThread[]> | null = null;
  #ported: ThreadPorts | null = null;
  readonly #pending = new Map<
    string,
    { hello: MultifdHello; answer: Uint8Array; timer: ReturnType<typeof setTimeout> }
  >();
  #closed = false;

  /**
   * Threads listen next to `listenUri` (the incoming listener's bound URI), started by
   * `spawn` (the main thread's, by default).
   */
  constructor(listenUri: string, registry: MultifdRegistry, spawn: RxSpawn = parentSpawn) {
    this.#listenUri = listenUri;
    this.#registry = registry;
    this.#spawnThreads = spawn;
  }

  /**
   * Answers a redirectable HELLO on `channel`: to a receive thread (true: the channel is
   * closed, it goes on there) or "stay" (false: offer it to the registry here).
   */
  async answer(hello: MultifdHello, channel: Channel): Promise<boolean> {
    const threads = await this.#start(hello.channels);
    const thread = threads.length > 0 ? threads[hello.id % threads.length] : null;
    if (!thread) return await stayHere(channel);
    const token = crypto.getRandomValues(new Uint8Array(16));
    const answer = crypto.getRandomValues(new Uint8Array(16));
    const key = uuidText(token);
    const timer = setTimeout(() => this.#pending.delete(key), REDIRECT_HOLD_MS);
    this.#pending.set(key, { hello, answer, timer });
    await writeAll(channel, encodeRedirect({ token, answer, address: thread.uri }));
    channel.close();
    return true;
  }

  /** Starts the threads for `channels` channels ahead of the first HELLO (x-multifd is on). */
  prepare(channels: number): void {
    this.#start(channels);
  }

  /** Stops every thread (the incoming listener closed). */
  close(): void {
    this.#closed = true;
    for (const p of this.#pending.values()) clearTimeout(p.timer);
    this.#pending.clear();
    this.#threads?.then((ts) => ts.forEach((t) => t.post({ t: "stop" })));
    this.#ported?.release();
  }

  #start(channels: number): Promise<RxThread[]> {
    return this.#threads ??= this.#spawn(channels);
  }

  async #spawn(channels: number): Promise<RxThread[]> {
    const uris = this.#threadUris(
      Math.min(channels, Math.max(2, navigator.hardwareConcurrency), MAX_THREADS),
    );
    if (uris.length === 0 || this.#closed) return [];
    const ported = this.#spawnThreads(uris.length, (message) => this.#crashed(message));
    if (!ported) return [];
    this.#ported = ported;
    const ports = await ported.ports;
    const started = await Promise.all(ports.map((port, i) => this.#listen(port, uris[i])));
    return started.filter((t): t is RxThread => t !== null);
  }

  /** Where `n` threads listen, or none where the incoming URI has no such neighbour. */
  #threadUris(n: number): string[] {
    const u = parseMigrationUri(this.#listenUri, "incoming");
    if (u.kind === "tcp") {
      return Array.from({ length: n }, () => formatMigrationUri({ ...u, port: 0 }));
    }
    if (u.kind === "unix") {
      return Array.from(
        { length: n },
        (_, i) => formatMigrationUri({ ...u, path: `${u.path}.rx${i}` }),
      );
    }
    return [];
  }

  /**
   * Starts one thread listening on `uri`; null when it cannot, or has not said so within
   * LISTEN_WAIT_MS (a thread that died loading says nothing: the channels then stay here).
   */
  #listen(port: MessagePort, uri: string): Promise<RxThread | null> {
    return new Promise((resolve) => {
      let thread: RxThread | null = null;
      const timer = setTimeout(() => resolve(null), LISTEN_WAIT_MS);
      port.onmessage = (e: MessageEvent<RxReport>) => {
        const m = e.data;
        if (m.t === "listening") {
          clearTimeout(timer);
          resolve(thread = new RxThread(port, m.uri));
        } else if (m.t === "listen-failed") {
          clearTimeout(timer);
          resolve(null);
        } else if (m.t === "join" && thread) this.#join(thread, m.conn, m.token);
        else if (m.t === "rx-error" && thread) thread.failures.get(m.conn)?.(m.kind, m.message);
      };
      port.postMessage({ t: "listen", uri } satisfies RxCommand);
    });
  }

  /** A redirected channel joined `thread`: the registry takes it when the token is known. */
  #join(thread: RxThread, conn: number, token: Uint8Array): void {
    const key = uuidText(token);
    const p = this.#pending.get(key);
    if (!p || this.#closed) return thread.post({ t: "drop", conn });
    this.#pending.delete(key);
    clearTimeout(p.timer);
    // The thread answers first (messages keep their order: before any `load` of it).
    thread.post({ t: "accept", conn, answer: p.answer });
    this.#registry.offer(p.hello, new RemoteChannel(thread, conn), null);
  }

  /** A thread died: its pool is stopped, the channels it read fail, later ones stay here. */
  #crashed(message: string): void {
    const threads = this.#threads;
    this.#threads = Promise.resolve([]);
    this.#ported = null;
    threads?.then((ts) => {
      for (const t of ts) {
        for (const fail of t.failures.values()) {
          fail("local", `multifd receive thread crashed: ${message}`);
        }
        t.failures.clear();
      }
    });
  }
}
