/**
 * The outgoing side of the agent: starts a source Worker for one migration, forwards
 * cancel and live parameter changes, and cleans up as migrate_fd_cleanup does
 * (cancelling → cancelled once the data path has stopped).
 *
 * The migration's point of no return (engine/no_return.ts) decides what a cancel and a dead
 * data path mean: before it the guest is the source's (a cancel goes ahead; a crashed Worker
 * leaves the guest running as it was); past it the destination may run the guest (a cancel
 * is refused; a crashed Worker leaves a precopy failed with the guest stopped here, and a
 * postcopy paused, so that a resume brings a new data path that finishes it).
 *
 * @module
 */
import type { SharedGuest } from "../adapters/memory/guest_ram.ts";
import { type RunState, VcpuControl } from "../adapters/memory/vcpu_control.ts";
import type { LiveParams, MainMessage, SourceStart } from "./engine/messages.ts";
import { PAST_THE_POINT, PointOfNoReturn } from "./engine/no_return.ts";
import type { ColoReport } from "./colo_state.ts";
import type { Capabilities } from "./options.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import type { Migration } from "./migration.ts";
import { isSetupOrActive, type MigrationStatus } from "./state_machine.ts";
import { STAT } from "./engine/stats.ts";
import { WorkerHost } from "./worker_host.ts";
import type { WarmWorkers } from "./warm_workers.ts";

/** The source's data-path Worker. */
export const SOURCE_WORKER = new URL("./engine/source_worker.ts", import.meta.url);
/** The module of a multifd page channel's Worker. */
export const CHANNEL_WORKER = new URL("./engine/multifd_worker.ts", import.meta.url);

/** What a cancel did: went ahead, was refused (past the point of no return), or found nothing. */
export type CancelAnswer = "cancelling" | "refused" | "idle";

/** Why a cancel in `status` was refused (the migration is past its point of no return). */
export function cancelRefusal(status: MigrationStatus): string {
  if (status.startsWith("postcopy-")) {
    return "The guest runs on the destination (postcopy): a cancel would lose the pages still " +
      "here. POST /migrations/current/pause stops the traffic (then recover and resume)";
  }
  return "The migration is past its point of no return: the destination may already be " +
    "running the guest; the migration completes or fails on its own";
}

/** How the data path runs. */
export interface OutgoingOptions {
  /** The link timeout (ms; engine/link_watch.ts), when not the default. */
  linkTimeoutMs?: number;
  /** Test seam: another source Worker module (tests/helpers/crashing_source_worker.ts). */
  sourceWorker?: URL;
  /** Hears the data path's COLO reports. */
  onColo?(m: ColoReport): void;
  /** Where the source Worker comes from and goes back to (kept warm between migrations). */
  warm?: WarmWorkers;
  /** `--colo-arbiter` is set (colo_arbiter.ts). */
  coloArbiter?: boolean;
}

/** A running outgoing migration's controls. */
export class Outgoing {
  readonly migration: Migration;
  #host: WorkerHost | null = null;
  readonly done: Promise<void>;
  readonly #point = new PointOfNoReturn();
  /**
   * Bytes of guest input handed to the data path in COLO and not given to the guest yet
   * (engine/colo_input.ts): counted up here before each is posted, down by the Worker.
   */
  readonly coloInputWaiting = new Int32Array(new SharedArrayBuffer(4));
  readonly #vcpu: VcpuControl;
  /** The guest's runstate when the migration began (what a dead data path gives back). */
  readonly #runstateBefore: RunState;
  readonly #start: SourceStart;
  readonly #workerUrl: URL;
  readonly #resolveDone: () => void;
  readonly #channelWorkers: Worker[] = [];
  readonly #warm: WarmWorkers | undefined;

  /** Starts the data path; `onPass` hears each dirty-log sync. */
  constructor(
    migration: Migration,
    guest: SharedGuest,
    params: LiveParams,
    caps: Capabilities,
    tls: TlsChannelOptions | undefined,
    onPass: (pass: number) => void,
    options: OutgoingOptions = {},
  ) {
    this.migration = migration;
    this.#vcpu = new VcpuControl(guest);
    this.#runstateBefore = this.#vcpu.runstate;
    this.#workerUrl = options.sourceWorker ?? SOURCE_WORKER;
    // Only the product's source Worker runs one migration after another (a test seam's not).
    this.#warm = options.sourceWorker ? undefined : options.warm;
    this.#onPass = onPass;
    this.#onColo = options.onColo;
    // QEMU's migrate_init: the clock of total-time starts with status setup, before the data
    // path's thread exists (starting a Worker takes tens of ms, and that is the migration's).
    migration.stats[STAT.startTime] = Date.now();
    let resolveDone = () => {};
    this.done = new Promise((r) => (resolveDone = r));
    this.#resolveDone = resolveDone;
    // Page-channel Workers start here, on the main thread: started inside the source
    // Worker, each takes about a second to come up (Deno 2.9 nested Workers).
    const channels = caps["x-multifd"] ? Number(params["x-multifd-channels"]) : 0;
    const ports: MessagePort[] = [];
    for (let id = 0; id < channels; id++) {
      // One started ahead and warmed up (OutgoingSide.prepareMultifd), or a new one.
      const w = options.warm?.take(CHANNEL_WORKER) ??
        new Worker(CHANNEL_WORKER, { type: "module" });
      const mc = new MessageChannel();
      w.postMessage({ t: "port", port: mc.port1 }, [mc.port1]);
      w.onerror = (e) => {
        e.preventDefault();
        this.#host?.post({ t: "multifd-crash", id, message: e.message });
      };
      this.#channelWorkers.push(w);
      ports.push(mc.port2);
    }
    this.#start = {
      t: "start",
      uri: migration.uri,
      guest,
      stats: migration.stats,
      status: migration.statusCell,
      params,
      caps,
      tls,
      point: this.#point.cell,
      linkTimeoutMs: options.linkTimeoutMs,
      coloArbiter: options.coloArbiter,
      coloInputWaiting: this.coloInputWaiting,
    };
    this.#spawn({ ...this.#start, multifdPorts: ports.length ? ports : undefined }, ports);
  }

  readonly #onPass: (pass: number) => void;
  readonly #onColo?: (m: ColoReport) => void;

  #spawn(start: SourceStart, transfer: Transferable[] = []): void {
    const migration = this.migration;
    this.#host = new WorkerHost(
      this.#workerUrl,
      start,
      {
        current: () => migration,
        onPass: this.#onPass,
        onColo: this.#onColo,
        onDone: (crash) => this.#ended(crash),
      },
      transfer,
      this.#warm,
    );
  }

  /** The data path ended (`crash`: it died, with this message). */
  #ended(crash?: string): void {
    this.#host = null;
    const m = this.migration.machine;
    const vcpu = this.#vcpu;
    if (crash !== undefined || isSetupOrActive(m.status)) {
      const why = crash !== undefined
        ? `data path crashed: ${crash}`
        : "data path ended unexpectedly";
      if (this.#point.crossed && m.status.startsWith("postcopy-")) {
        // The guest runs on the destination with pages still here: pause (the destination
        // notices the closed channels and pauses too); a resume starts a new data path.
        this.migration.setError(`${why}; postcopy paused`);
        if (m.status !== "postcopy-paused") m.transition(m.status, "postcopy-paused");
        return;
      }
      if (this.#point.crossed) {
        if (vcpu.runstate === "finish-migrate") vcpu.setRunstate("postmigrate");
        this.migration.setError(`${why}; ${PAST_THE_POINT}`);
      } else {
        this.#giveGuestBack();
        this.migration.setError(why);
      }
      if (isSetupOrActive(m.status)) m.transition(m.status, "failed");
    }
    if (m.status === "colo") {
      // The primary's data path died: its connection ended, so the secondary runs the guest
      // on alone (it took it over); this one must not.
      vcpu.setRunstate("postmigrate");
      this.migration.setError(
        `${crash ?? "data path ended"} in COLO; the secondary runs the guest`,
      );
      this.#onColo?.({ t: "colo", what: "exit", reason: "error" });
      m.transition("colo", "failed");
    }
    if (m.status === "cancelling") {
      if (!this.#point.crossed) this.#giveGuestBack();
      m.transition("cancelling", "cancelled");
    }
    for (const w of this.#channelWorkers) w.terminate();
    this.#resolveDone();
  }

  /** Before the point of no return: the guest runs on (or stays paused) as it was. */
  #giveGuestBack(): void {
    if (this.#vcpu.runstate === "finish-migrate") this.#vcpu.setRunstate(this.#runstateBefore);
  }

  /**
   * migrate_fd_cancel: any setup-or-active status → cancelling, then shut the channel;
   * refused once the migration is past its point of no return.
   */
  cancel(): CancelAnswer {
    const m = this.migration.machine;
    if (!isSetupOrActive(m.status)) return "idle";
    if (!this.#point.claimForCancel()) return "refused";
    while (isSetupOrActive(m.status)) {
      if (m.transition(m.status, "cancelling")) break;
    }
    if (m.status !== "cancelling") return "idle";
    if (this.#host) this.#host.post({ t: "cancel" });
    else this.#ended(); // no data path runs (it died): nothing else will finish the cancel
    return "cancelling";
  }

  /** Sends the parameters again (max-bandwidth, downtime-limit and others apply live). */
  setParams(params: LiveParams): void {
    this.#start.params = params;
    this.#host?.post({ t: "params", params });
  }

  /**
   * Forwards migrate-start-postcopy, migrate-continue, migrate-pause or a resume; a resume
   * of a postcopy whose data path died starts a new one.
   */
  command(
    m: Extract<
      MainMessage,
      {
        t:
          | "postcopy"
          | "continue"
          | "pause"
          | "resume"
          | "auto-converge"
          | "colo-lost-heartbeat"
          | "colo-checkpoint"
          | "colo-records"
          | "colo-input";
      }
    >,
  ): void {
    if (m.t === "resume" && this.#host === null) {
      this.#spawn({ ...this.#start, recover: { uri: m.uri, tls: m.tls } });
      return;
    }
    this.#host?.post(m);
  }
}
