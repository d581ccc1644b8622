/**
 * The agent's outgoing side: QMP migrate past its refusals (migrate_init: the migration is
 * recorded `setup`, and whatever fails from here fails it), a resume of a paused postcopy,
 * and the commands a running outgoing migration takes (migrate-start-postcopy,
 * migrate-continue, migrate-pause, migrate_cancel, live parameters). It owns the newest
 * outgoing {@link Migration} and its data path ({@link Outgoing}).
 *
 * @module
 */
import type { Machine } from "../adapters/memory/machine.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import { DomainError, MigrationFailed } from "./errors.ts";
import type { EventBus } from "./event_bus.ts";
import type { FerryEventMap } from "./events.ts";
import type { ForwardedRecord } from "./engine/colo_records.ts";
import type { LiveParams } from "./engine/messages.ts";
import { Migration, type MigrationListener } from "./migration.ts";
import { type MigrationInfo, migrationInfo } from "./migration_info.ts";
import type { ColoState, ColoVerdict } from "./colo_state.ts";
import type { Capabilities } from "./options.ts";
import {
  type CancelAnswer,
  cancelRefusal,
  CHANNEL_WORKER,
  Outgoing,
  SOURCE_WORKER,
} from "./outgoing.ts";
import { PolicyTracker } from "./policy.ts";
import { type MigrateRequest, startProblems } from "./preflight.ts";
import type { MigrationStatus } from "./state_machine.ts";
import { WarmWorkers } from "./warm_workers.ts";

/** What the outgoing side uses of its agent. */
export interface OutgoingDeps {
  machine: Machine;
  /**
   * Start the source's data-path Worker now (an agent not started `--incoming`): the first
   * migration takes it instead of waiting for one to come up.
   */
  prestart?: boolean;
  events: EventBus<FerryEventMap>;
  /** TLS for a channel to `uri` (the tls-creds parameter), or undefined; throws when unusable. */
  tlsFor(uri: string): TlsChannelOptions | undefined;
  /** Hears every status change of every outgoing migration. */
  listener: MigrationListener;
  /** Records a new outgoing migration in the agent's history. */
  record(m: Migration): void;
  /** Hands the new migration's `x-policy` (or null) to the agent's watch. */
  setPolicy(policy: PolicyTracker | null): void;
  /** The link timeout (ms; engine/link_watch.ts), when not the default. */
  linkTimeoutMs?: number;
  /** The agent's COLO status (the data path reports to it). */
  colo?: ColoState;
  /** Page channels the next migration opens (x-multifd-channels with x-multifd on, else 0). */
  multifdChannels?: () => number;
}

/** Outgoing migrations of one agent. */
export class OutgoingSide {
  readonly #deps: OutgoingDeps;
  /** The newest outgoing migration (it may have failed before its data path started). */
  #source: Migration | null = null;
  /** The data path of `#source`, once started. */
  #outgoing: Outgoing | null = null;
  /** The source Worker kept between migrations, and page-channel Workers started ahead. */
  readonly #warm = new WarmWorkers();
  /** An outgoing migration's data path runs (no Worker is started ahead meanwhile). */
  #running = false;

  /** An outgoing side with nothing started. */
  constructor(deps: OutgoingDeps) {
    this.#deps = deps;
    if (deps.prestart) {
      this.#warm.prestart(SOURCE_WORKER, { t: "warm-up", guest: deps.machine.shared });
    }
    this.prepareMultifd();
  }

  /**
   * With x-multifd on, the next migration's page-channel Workers start now and warm up while
   * they wait (warm_workers.ts, engine/warm_up.ts); each runs one migration.
   */
  prepareMultifd(): void {
    const channels = this.#deps.multifdChannels?.() ?? 0;
    if (channels === 0 || this.#running) return;
    const warmUp = { t: "warm-up", guest: this.#deps.machine.shared };
    this.#warm.prestart(CHANNEL_WORKER, warmUp, channels);
  }

  /** Terminates the source Worker kept between migrations (agent shutdown). */
  close(): void {
    this.#warm.close();
  }

  /** The newest outgoing migration, if any. */
  get source(): Migration | null {
    return this.#source;
  }

  /** The data path of the newest outgoing migration, once started. */
  get outgoing(): Outgoing | null {
    return this.#outgoing;
  }

  /** The newest outgoing migration's status (`none` before any). */
  get status(): MigrationStatus {
    return this.#source?.status ?? "none";
  }

  /** The data path has ended (or there is none). */
  get done(): Promise<void> | undefined {
    return this.#outgoing?.done;
  }

  /**
   * migrate past the seed's migrate_prepare refusals: a new migration `setup`; a failure
   * now (startProblems, TLS) records it `failed` and throws {@link MigrationFailed}.
   */
  start(req: MigrateRequest, caps: Capabilities, params: LiveParams): MigrationInfo {
    const { machine } = this.#deps;
    machine.clearArrival();
    const migration = new Migration("source", req.uri, this.#deps.listener);
    this.#deps.record(migration);
    migration.caps = caps;
    migration.params = params;
    this.#source = migration;
    this.#outgoing = null;
    migration.machine.transition("none", "setup");
    let tls: TlsChannelOptions | undefined;
    try {
      const failed = startProblems(req.uri, caps);
      if (failed.length > 0) throw failed[0];
      tls = this.#deps.tlsFor(req.uri);
    } catch (e) {
      if (!(e instanceof DomainError)) throw e;
      // The seed's migrate_fd_error: the error first, so `failed` is seen with it.
      migration.setError(e.message);
      migration.machine.transition("setup", "failed");
      throw new MigrationFailed(e, migration.id);
    }
    const ramBytes = machine.layout.reduce((n, b) => n + b.size, 0);
    this.#deps.setPolicy(
      req["x-policy"] ? new PolicyTracker(req["x-policy"], ramBytes, Date.now()) : null,
    );
    this.#outgoing = new Outgoing(
      migration,
      machine.shared,
      { ...params },
      caps,
      tls,
      (pass) => this.#deps.events.publish("MIGRATION_PASS", { pass }),
      {
        linkTimeoutMs: this.#deps.linkTimeoutMs,
        onColo: (m) => this.#deps.colo?.report(m),
        warm: this.#warm,
        coloArbiter: this.#deps.colo?.arbitrated,
      },
    );
    // The next migration's page channels start ahead once this one is over (not during it:
    // their warm-up would take CPU from its data path).
    this.#running = true;
    this.#outgoing.done.then(() => {
      this.#running = false;
      this.prepareMultifd();
    });
    return migrationInfo(migration);
  }

  /** A resume (checked by the caller): the paused migration gets a new channel to `uri`. */
  resume(uri: string): MigrationInfo {
    const tls = this.#deps.tlsFor(uri);
    this.#outgoing!.command({ t: "resume", uri, tls });
    return migrationInfo(this.#outgoing!.migration);
  }

  /** migrate-start-postcopy past its checks: the flag the source's loop reads. */
  startPostcopy(): void {
    // Not an error once finished: that would race with the command (as in the seed).
    this.#outgoing?.command({ t: "postcopy" });
  }

  /** migrate-continue past its check: releases a migration paused in pre-switchover. */
  continue(): void {
    this.#outgoing?.command({ t: "continue" });
  }

  /** migrate-pause on the source, when its migration is postcopy-active. */
  pause(): boolean {
    if (!this.#outgoing || this.status !== "postcopy-active") return false;
    this.#outgoing.command({ t: "pause" });
    return true;
  }

  /** x-colo-lost-heartbeat (or an arbiter's verdict) for the primary: false when none runs. */
  lostHeartbeat(verdict?: ColoVerdict): boolean {
    if (!this.#outgoing || this.status !== "colo") return false;
    this.#outgoing.command({ t: "colo-lost-heartbeat", ...(verdict ? { verdict } : {}) });
    return true;
  }

  /** COLO primary: a checkpoint now (the output compare); nothing outside COLO. */
  coloCheckpoint(): void {
    if (this.status === "colo") this.#outgoing?.command({ t: "colo-checkpoint" });
  }

  /** COLO primary: its guest's output records for the checkpoints (colo_records.ts). */
  coloRecords(records: ForwardedRecord[]): void {
    if (this.status === "colo") this.#outgoing?.command({ t: "colo-records", records });
  }

  /** COLO primary: input for its guest, given there and to the secondary's (colo_input.ts). */
  coloInput(bytes: Uint8Array): void {
    const out = this.#outgoing;
    if (!out) return;
    Atomics.add(out.coloInputWaiting, 0, bytes.length);
    out.command({ t: "colo-input", bytes });
  }

  /** COLO primary: bytes of its guest's input handed to the data path and not given yet. */
  coloInputWaiting(): number {
    return this.#outgoing ? Atomics.load(this.#outgoing.coloInputWaiting, 0) : 0;
  }

  /** migrate_cancel: what it did (`refused` past the point of no return). */
  cancel(): CancelAnswer {
    return this.#outgoing?.cancel() ?? "idle";
  }

  /** migrate_cancel, refused with a `wrong-state` error past the point of no return. */
  cancelOrRefuse(): void {
    if (this.cancel() === "refused") {
      throw new DomainError("wrong-state", cancelRefusal(this.status));
    }
  }

  /** New live parameters for the running data path (and its MigrationInfo). */
  setParams(params: LiveParams): void {
    this.#outgoing?.setParams(params);
    if (this.#outgoing) this.#outgoing.migration.params = params;
  }
}
