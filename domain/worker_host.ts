/**
 * Main-thread side of a data-path Worker: answers its transition requests with the
 * current migration's compare-and-set, records its errors, starts the codec Workers its
 * compression pools ask for, and forwards the rest.
 *
 * @module
 */
import type { ColoReport } from "./colo_state.ts";
import type { MainMessage, WorkerMessage } from "./engine/messages.ts";
import type { Migration } from "./migration.ts";
import { CodecSpawner } from "./codecs/codec_spawner.ts";
import type { WarmWorkers } from "./warm_workers.ts";

/** Handlers for the messages that are not transitions. */
export interface WorkerHandlers {
  /** The migration a transition or error applies to right now. */
  current(): Migration | null;
  onPass?(pass: number): void;
  onListening?(uri: string): void;
  onRearm?(): void;
  /** The destination loaded a whole guest and is about to run it. */
  onArrived?(): void;
  /** A migrate-recover could not listen; `message` says why. */
  onRecoverFailed?(message: string): void;
  /** COLO entered, held or left. */
  onColo?(m: ColoReport): void;
  /** The Worker ended: it said it was done, or it died (`crash`: the error's message). */
  onDone(crash?: string): void;
}

/** Numbers runs across every host of this thread (a warm Worker's runs differ). */
let lastRun = 0;

/** Starts a module Worker and wires it to the state machine. */
export class WorkerHost {
  readonly #worker: Worker;
  readonly #codecs = new CodecSpawner();
  readonly #url: URL;
  readonly #warm: WarmWorkers | undefined;
  #alive = true;

  /**
   * Starts `url` (an idle one from `warm`, given back there when its run ends cleanly) and
   * posts `start` to it, numbered: the Worker tags what its run posts with that number, and
   * anything else it posts (a finished run's leftovers in a warm Worker) is dropped.
   */
  constructor(
    url: URL,
    start: object,
    handlers: WorkerHandlers,
    transfer: Transferable[] = [],
    warm?: WarmWorkers,
  ) {
    this.#url = url;
    this.#warm = warm;
    const run = ++lastRun;
    this.#worker = warm ? warm.take(url) : new Worker(url, { type: "module" });
    this.#worker.onmessage = (e: MessageEvent<WorkerMessage & { run?: number }>) => {
      const m = e.data;
      if (m.run !== undefined && m.run !== run) return;
      const mig = handlers.current();
      switch (m.t) {
        case "transition": {
          const ok = mig ? mig.machine.transition(m.from, m.to) : false;
          this.post({ t: "transition-result", seq: m.seq, ok });
          break;
        }
        case "error":
          mig?.setError(m.message);
          break;
        case "pass":
          handlers.onPass?.(m.pass);
          break;
        case "listening":
          handlers.onListening?.(m.uri);
          break;
        case "rearm":
          handlers.onRearm?.();
          break;
        case "arrived":
          handlers.onArrived?.();
          break;
        case "recover-failed":
          handlers.onRecoverFailed?.(m.message);
          break;
        case "codec-request":
          this.#codecs.start(
            m.id,
            m.threads,
            (ports) => {
              if (this.#alive) {
                this.#worker.postMessage({ t: "codec-ports", id: m.id, ports }, ports);
              }
            },
            (message) => this.post({ t: "codec-crash", id: m.id, message }),
            m.module,
          );
          break;
        case "colo":
          handlers.onColo?.(m);
          break;
        case "codec-release":
          this.#codecs.stop(m.id);
          break;
        case "notice":
          console.error(JSON.stringify({ level: "warn", msg: m.message, id: mig?.id }));
          break;
        case "done":
          this.#release();
          handlers.onDone();
          break;
      }
    };
    this.#worker.onerror = (e) => {
      e.preventDefault();
      if (!this.#alive) return;
      this.terminate();
      handlers.onDone(e.message);
    };
    this.#worker.postMessage({ ...start, run }, transfer);
  }

  /** Sends a message if the Worker still runs. */
  post(m: MainMessage): void {
    if (this.#alive) this.#worker.postMessage(m);
  }

  /** Codec Workers running for this Worker's pools. */
  get codecWorkers(): number {
    return this.#codecs.running;
  }

  /** The run ended cleanly: its Worker goes back to `warm` (or is terminated without one). */
  #release(): void {
    if (!this.#alive) return;
    if (!this.#warm) return this.terminate();
    this.#alive = false;
    this.#codecs.stopAll();
    this.#warm.give(this.#url, this.#worker);
  }

  /** Stops the Worker (and its codec Workers) at once. */
  terminate(): void {
    if (!this.#alive) return;
    this.#alive = false;
    this.#worker.terminate();
    this.#codecs.stopAll();
  }
}
