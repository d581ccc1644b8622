/**
 * Where a codec pool's threads come from. A Worker started inside another Worker takes
 * about a second to come up in Deno 2.9 (one started by the main thread: 40–100 ms), so a
 * data-path Worker asks the main thread for its codec Workers (`codec-request`) and gets
 * one MessagePort per Worker back (`codec-ports`); jobs posted before the ports arrive wait
 * in order. Elsewhere (the main thread, tests) a pool starts its Workers itself.
 *
 * Protocol between the pool's thread and the main thread, numbered per pool:
 * `codec-request {id, threads}` → `codec-ports {id, ports}`; a crashed codec Worker →
 * `codec-crash {id, message}`; the pool closed → `codec-release {id}` (the main thread
 * terminates those Workers).
 *
 * @module
 */
import type { CodecJob, CodecReply } from "./compress_messages.ts";

/** The codec Worker's module. */
export const CODEC_WORKER = new URL("./compress_worker.ts", import.meta.url);

/** One codec thread as a pool sees it. */
export interface CodecEndpoint {
  postMessage(job: CodecJob, transfer: Transferable[]): void;
  onmessage: ((e: MessageEvent<CodecReply>) => void) | null;
  /** Ends the thread (idempotent). */
  close(): void;
}

/** Makes `threads` endpoints; `onCrash` hears a thread that died. */
export type CodecThreadSource = (
  threads: number,
  onCrash: (message: string) => void,
) => CodecEndpoint[];

/**
 * Which Worker a request starts: a codec thread (the default), or a multifd receive thread
 * (multifd_rx_worker.ts), which uses the same protocol.
 */
export type ThreadModule = "codec" | "multifd-rx";

/** Requests from a pool's thread to the main thread. */
export type CodecRequest =
  | { t: "codec-request"; id: number; threads: number; module?: ThreadModule }
  | { t: "codec-release"; id: number };

/** Answers from the main thread. */
export type CodecAnswer =
  | { t: "codec-ports"; id: number; ports: MessagePort[] }
  | { t: "codec-crash"; id: number; message: string };

/** Codec Workers started by this thread. */
export function localCodecThreads(
  threads: number,
  onCrash: (message: string) => void,
): CodecEndpoint[] {
  return Array.from({ length: threads }, (_, i) => {
    const w = new Worker(CODEC_WORKER, { type: "module", name: `codec-${i}` });
    w.onerror = (e) => {
      e.preventDefault();
      onCrash(e.message);
    };
    w.onmessageerror = () => onCrash("a codec Worker sent an unreadable message");
    const endpoint: CodecEndpoint = {
      postMessage: (job, transfer) => w.postMessage(job, transfer),
      onmessage: null,
      close: () => w.terminate(),
    };
    w.onmessage = (e: MessageEvent<CodecReply>) => endpoint.onmessage?.(e);
    return endpoint;
  });
}

/** An endpoint whose port comes later: messages wait, in order, until it does. */
class DeferredPort implements CodecEndpoint {
  onmessage: ((e: MessageEvent<CodecReply>) => void) | null = null;
  #port: MessagePort | null = null;
  #waiting: [CodecJob, Transferable[]][] = [];
  #closed = false;
  readonly #onClosed: () => void;

  constructor(onClosed: () => void) {
    this.#onClosed = onClosed;
  }

  attach(port: MessagePort): void {
    if (this.#closed) {
      port.postMessage({ t: "close" });
      port.close();
      return;
    }
    this.#port = port;
    port.onmessage = (e: MessageEvent<CodecReply>) => this.onmessage?.(e);
    for (const [job, transfer] of this.#waiting) port.postMessage(job, transfer);
    this.#waiting = [];
  }

  postMessage(job: CodecJob, transfer: Transferable[]): void {
    if (this.#closed) return;
    if (this.#port) this.#port.postMessage(job, transfer);
    else this.#waiting.push([job, transfer]);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#waiting = [];
    this.#port?.postMessage({ t: "close" });
    this.#port?.close();
    this.#onClosed();
  }
}

let source: CodecThreadSource = localCodecThreads;

/** Threads of another module than codecs asked of the main thread (see {@link threadPorts}). */
let portsOf:
  | ((module: ThreadModule, threads: number, onCrash: (m: string) => void) => ThreadPorts)
  | null = null;

/** Threads the main thread started for this one: their ports, and how to let them go. */
export interface ThreadPorts {
  /** One port per Worker, once the main thread answered. */
  ports: Promise<MessagePort[]>;
  /** The main thread stops those Workers. */
  release(): void;
}

/**
 * Asks the main thread for `threads` Workers of `module` (after useParentCodecThreads; null
 * elsewhere: the caller goes without them). `onCrash` hears one that died.
 */
export function threadPorts(
  module: ThreadModule,
  threads: number,
  onCrash: (message: string) => void,
): ThreadPorts | null {
  return portsOf?.(module, threads, onCrash) ?? null;
}

/** The codec thread source of this thread. */
export function codecThreads(): CodecThreadSource {
  return source;
}

/**
 * Makes this thread (a data-path Worker) ask the main thread for codec Workers through
 * `post`; returns the handler for the main thread's answers, which says whether a message
 * was one of them.
 */
export function useParentCodecThreads(
  post: (m: CodecRequest) => void,
): (m: { t: string }) => boolean {
  const pools = new Map<number, { ends: DeferredPort[]; onCrash: (m: string) => void }>();
  const portPools = new Map<
    number,
    { resolve: (p: MessagePort[]) => void; onCrash: (m: string) => void }
  >();
  let next = 1;
  portsOf = (module, threads, onCrash) => {
    const id = next++;
    const ports = Promise.withResolvers<MessagePort[]>();
    portPools.set(id, { resolve: ports.resolve, onCrash });
    post({ t: "codec-request", id, threads, module });
    return {
      ports: ports.promise,
      release: () => {
        if (portPools.delete(id)) post({ t: "codec-release", id });
      },
    };
  };
  source = (threads, onCrash) => {
    const id = next++;
    let open = threads;
    // The pool closes every endpoint; once all are closed, the main thread may let go.
    const closed = () => {
      if (--open === 0 && pools.delete(id)) post({ t: "codec-release", id });
    };
    const ends = Array.from({ length: threads }, () => new DeferredPort(closed));
    pools.set(id, { ends, onCrash });
    post({ t: "codec-request", id, threads });
    return ends;
  };
  return (m) => {
    if (m.t !== "codec-ports" && m.t !== "codec-crash") return false;
    const a = m as CodecAnswer;
    const ported = portPools.get(a.id);
    if (ported) {
      if (a.t === "codec-ports") ported.resolve(a.ports);
      else ported.onCrash(a.message);
      return true;
    }
    const pool = pools.get(a.id);
    if (a.t === "codec-ports") {
      if (pool) a.ports.forEach((p, i) => pool.ends[i]?.attach(p));
      else a.ports.forEach((p) => (p.postMessage({ t: "close" }), p.close()));
    } else pool?.onCrash(a.message);
    return true;
  };
}
