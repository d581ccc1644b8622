/**
 * The main thread's side of codec threads for data-path Workers (see `codec_threads.ts`):
 * starts the codec Workers a pool asks for, hands their ports over, reports a crash, and
 * stops them when the pool lets go or its data-path Worker ends.
 *
 * @module
 */
import { CODEC_WORKER, type ThreadModule } from "./codec_threads.ts";

const MODULES: Record<ThreadModule, URL> = {
  codec: CODEC_WORKER,
  "multifd-rx": new URL("../engine/multifd_rx_worker.ts", import.meta.url),
};

/** The main thread's side: starts and stops the codec Workers its data-path Workers ask for. */
export class CodecSpawner {
  readonly #sets = new Map<number, Worker[]>();

  /**
   * Starts `threads` codec (or `module`) Workers for pool `id`; `send` gets one port per Worker,
   * `crashed` hears the first one that dies (the others are stopped then).
   */
  start(
    id: number,
    threads: number,
    send: (ports: MessagePort[]) => void,
    crashed: (message: string) => void,
    module: ThreadModule = "codec",
  ): void {
    this.stop(id);
    const workers: Worker[] = [];
    const ports: MessagePort[] = [];
    for (let i = 0; i < threads; i++) {
      const w = new Worker(MODULES[module], { type: "module", name: `${module}-${i}` });
      const mc = new MessageChannel();
      w.postMessage({ t: "port", port: mc.port1 }, [mc.port1]);
      w.onerror = (e) => {
        e.preventDefault();
        if (this.#sets.get(id) !== workers) return;
        this.stop(id);
        crashed(e.message);
      };
      workers.push(w);
      ports.push(mc.port2);
    }
    this.#sets.set(id, workers);
    send(ports);
  }

  /** Stops pool `id`'s Workers (idempotent). */
  stop(id: number): void {
    for (const w of this.#sets.get(id) ?? []) w.terminate();
    this.#sets.delete(id);
  }

  /** Stops every Worker (the data-path Worker ended). */
  stopAll(): void {
    for (const id of [...this.#sets.keys()]) this.stop(id);
  }

  /** Codec Workers running now. */
  get running(): number {
    let n = 0;
    for (const set of this.#sets.values()) n += set.length;
    return n;
  }
}
