/**
 * The outgoing side of the agent: starts a source Worker for one migration, forwards
 * cancel and live parameter changes, and cleans up as migrate_fd_cleanup does
 * (cancelling → cancelled once the data path has stopped).
 *
 * @module
 */
import type { SharedGuest } from "../adapters/memory/guest_ram.ts";
import type { LiveParams, MainMessage, SourceStart } from "./engine/messages.ts";
import type { Capabilities } from "./options.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import type { Migration } from "./migration.ts";
import { isSetupOrActive } from "./state_machine.ts";
import { STAT } from "./engine/stats.ts";
import { WorkerHost } from "./worker_host.ts";

const SOURCE_WORKER = new URL("./engine/source_worker.ts", import.meta.url);
const CHANNEL_WORKER = new URL("./engine/multifd_worker.ts", import.meta.url);

/** A running outgoing migration's controls. */
export class Outgoing {
  readonly migration: Migration;
  readonly #host: WorkerHost;
  readonly done: Promise<void>;

  /** Starts the data path; `onPass` hears each dirty-log sync. */
  constructor(
    migration: Migration,
    guest: SharedGuest,
    params: LiveParams,
    caps: Capabilities,
    tls: TlsChannelOptions | undefined,
    onPass: (pass: number) => void,
  ) {
    this.migration = migration;
    // QEMU's migrate_init: the clock of total-time starts with status setup, before the data
    // path's thread exists (starting a Worker takes tens of ms, and that is the migration's).
    migration.stats[STAT.startTime] = Date.now();
    let resolveDone = () => {};
    this.done = new Promise((r) => (resolveDone = r));
    // Page-channel Workers start here, on the main thread: started inside the source
    // Worker, each takes about a second to come up (Deno 2.9 nested Workers).
    const channels = caps["x-multifd"] ? Number(params["x-multifd-channels"]) : 0;
    const workers: Worker[] = [];
    const ports: MessagePort[] = [];
    for (let id = 0; id < channels; id++) {
      const w = new Worker(CHANNEL_WORKER, { type: "module" });
      const mc = new MessageChannel();
      w.postMessage({ t: "port", port: mc.port1 }, [mc.port1]);
      w.onerror = (e) => {
        e.preventDefault();
        this.#host.post({ t: "multifd-crash", id, message: e.message });
      };
      workers.push(w);
      ports.push(mc.port2);
    }
    const start: SourceStart = {
      t: "start",
      uri: migration.uri,
      guest,
      stats: migration.stats,
      status: migration.statusCell,
      params,
      caps,
      tls,
      multifdPorts: ports.length ? ports : undefined,
    };
    this.#host = new WorkerHost(SOURCE_WORKER, start, {
      current: () => migration,
      onPass,
      onDone: () => {
        for (const w of workers) w.terminate();
        const m = migration.machine;
        if (isSetupOrActive(m.status)) {
          migration.setError("data path ended unexpectedly");
          m.transition(m.status, "failed");
        }
        if (m.status === "cancelling") m.transition("cancelling", "cancelled");
        resolveDone();
      },
    }, ports);
  }

  /** migrate_fd_cancel: any setup-or-active status → cancelling, then shut the channel. */
  cancel(): void {
    const m = this.migration.machine;
    while (isSetupOrActive(m.status)) {
      if (m.transition(m.status, "cancelling")) break;
    }
    if (m.status === "cancelling") this.#host.post({ t: "cancel" });
  }

  /** Sends the parameters again (max-bandwidth, downtime-limit and others apply live). */
  setParams(params: LiveParams): void {
    this.#host.post({ t: "params", params });
  }

  /** Forwards migrate-start-postcopy, migrate-continue, migrate-pause or a resume. */
  command(
    m: Extract<MainMessage, { t: "postcopy" | "continue" | "pause" | "resume" | "auto-converge" }>,
  ): void {
    this.#host.post(m);
  }
}
