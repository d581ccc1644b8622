/**
 * The agent: one guest, its migration settings, the outgoing and incoming migrations,
 * the history of migrations, and the event stream. Every route makes one call here.
 *
 * @module
 */
import type { DriveInfo } from "../adapters/disk/drive.ts";
import type { Machine, RunState } from "../adapters/memory/machine.ts";
import { parseMigrationUri } from "../adapters/channels/uri.ts";
import { TlsCredsRegistry } from "../adapters/channels/tls_creds.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import { type Blocker, Blockers } from "./blockers.ts";
import { type OptionSet, withBlockOptions, withoutBlockOptions } from "./block_options.ts";
import { DomainError, MIGRATION_ACTIVE } from "./errors.ts";
import { requireExecAllowed } from "./exec_policy.ts";
import { EventBus } from "./event_bus.ts";
import type { FerryEventMap } from "./events.ts";
import { GLOBAL_DEFAULTS, type Globals } from "./globals.ts";
import { ColoState } from "./colo_state.ts";
import { arbiterFor } from "./colo_arbiter.ts";
import { type ColoOutput, coloOutputOf, loadOutputDigest } from "./colo_output.ts";
import { IncomingSide } from "./incoming_side.ts";
import { tlsOptionsFor } from "./tls_options.ts";
import type { Migration } from "./migration.ts";
import { type MigrationInfo, queryMigrate } from "./migration_info.ts";
import { MigrationHistory } from "./migration_history.ts";
import { MigrationWatch } from "./migration_watch.ts";
import { mergeCapabilities, mergeParameters } from "./option_checks.ts";
import {
  type Capabilities,
  DEFAULT_CAPABILITIES,
  DEFAULT_PARAMETERS,
  liveParameters,
  type Parameters,
} from "./options.ts";
import type { LiveParams } from "./engine/messages.ts";
import { OutgoingSide } from "./outgoing_side.ts";
import {
  migrateProblems,
  type MigrateRequest,
  type PreflightState,
  prepareProblems,
} from "./preflight.ts";
import { isFinished, isSetupOrActive, type MigrationStatus } from "./state_machine.ts";
import type { AgentConfig } from "./agent_config.ts";
import { buildMachine } from "./agent_machine.ts";
import { setLateBlockActivate } from "./block_activation.ts";
import { DriveBitmapControl } from "./drive_bitmap_control.ts";
import { GuestControl } from "./guest_control.ts";
import {
  continueMigration,
  pauseMigration,
  startPostcopy,
  type SwitchoverSides,
} from "./switchover_control.ts";

export type { AgentConfig, MigrateRequest };

/** Events published within this many ms reach each SSE subscriber together. */
const EVENT_COALESCE_MS = 10;

/** One Ferry agent. */
export class Agent {
  readonly events = new EventBus<FerryEventMap>(2048, 4096, EVENT_COALESCE_MS);
  readonly machine: Machine;
  parameters: Parameters;
  capabilities: Capabilities;
  readonly onlyMigratable: boolean;
  /** `--allow-exec`: whether `exec:` migration URIs are taken. */
  readonly allowExec: boolean;
  readonly #history = new MigrationHistory();
  readonly #blockers = new Blockers();
  readonly #globals: Globals["flags"];
  readonly #output: ColoOutput;
  readonly #out: OutgoingSide;
  readonly #incoming: IncomingSide;
  /** stop, cont, input and the drives: the guest-facing operations. */
  readonly #guest: GuestControl;
  readonly #watch = new MigrationWatch(this.events, {
    outgoing: () => this.#out.outgoing,
    incoming: () => this.#incoming.current,
  });
  readonly #tls: TlsCredsRegistry;
  /** blk/inc set the block options of the running migration (the seed's flag). */
  #mustRemoveBlock = false;
  /** query-colo-status, COLO_EXIT, and where a lost-heartbeat goes. */
  readonly colo = new ColoState(this.events);
  /** The drives' dirty bitmaps (block-dirty-bitmap-add/-remove). */
  readonly bitmaps: DriveBitmapControl;

  private constructor(machine: Machine, config: AgentConfig) {
    this.#tls = config.tls ?? new TlsCredsRegistry();
    this.machine = machine;
    this.#guest = new GuestControl(machine, () => this.#sourceStatus, {
      give: (bytes) => this.#out.coloInput(bytes),
      waiting: () => this.#out.coloInputWaiting(),
    });
    if (config.coloArbiter) this.colo.arbitrate(arbiterFor(config.coloArbiter, this.colo, machine));
    this.bitmaps = new DriveBitmapControl(() => machine.shared.drives ?? []);
    this.parameters = config.parameters ?? { ...DEFAULT_PARAMETERS };
    this.capabilities = config.capabilities ?? { ...DEFAULT_CAPABILITIES };
    this.onlyMigratable = config.onlyMigratable ?? false;
    this.allowExec = config.allowExec ?? false;
    this.#globals = { ...(config.globals ?? GLOBAL_DEFAULTS) };
    this.#incoming = new IncomingSide({
      machine,
      events: this.events,
      tlsFor: (uri) => this.#tlsFor(uri, "server"),
      decompressThreads: () => this.parameters["decompress-threads"],
      multifdChannels: () => this.#multifdChannels(),
      listener: this.#onTransition,
      record: (m) => this.#history.record(m),
      allowExec: this.allowExec,
      linkTimeoutMs: config.linkTimeoutMs,
      arrivalDigest: config.arrivalDigest,
      colo: this.colo,
    }, config.incoming === "defer");
    this.#out = new OutgoingSide({
      machine,
      events: this.events,
      tlsFor: (uri) => this.#tlsFor(uri, "client"),
      listener: this.#onTransition,
      record: (m) => this.#history.record(m),
      setPolicy: (p) => (this.#watch.policy = p),
      linkTimeoutMs: config.linkTimeoutMs,
      colo: this.colo,
      prestart: !config.incoming,
      multifdChannels: () => this.#multifdChannels(),
    });
    this.#coloEnabled();
    setLateBlockActivate(machine.shared, this.capabilities["late-block-activate"]);
    this.colo.route((mode, verdict) =>
      mode === "primary" ? this.#out.lostHeartbeat(verdict) : this.#incoming.lostHeartbeat(verdict)
    );
    const output = this.#output = coloOutputOf(machine, this.#out, this.#incoming);
    this.colo.listen((m) => output.report(m));
  }

  /** Builds the guest and, with `--incoming URI`, starts listening. */
  static async create(config: AgentConfig): Promise<Agent> {
    if (config.incoming && config.incoming !== "defer") {
      parseMigrationUri(config.incoming, "incoming");
      requireExecAllowed(config.incoming, "incoming", config.allowExec ?? false);
    }
    const machine = await buildMachine(config);
    const agent = new Agent(machine, config);
    if (config.incoming && config.incoming !== "defer") {
      await agent.#incoming.listen(config.incoming, !config.startPaused);
    }
    return agent;
  }

  /** query-migrate. */
  query(): MigrationInfo {
    return queryMigrate(
      this.#out.source,
      this.#incoming.current,
      this.#infoOptions(),
    );
  }

  /** Recent migrations, newest first. */
  list(): MigrationInfo[] {
    return this.#history.list(this.#infoOptions());
  }

  /** One migration by id. */
  get(id: string): MigrationInfo {
    return this.#history.get(id, this.#infoOptions());
  }

  /** The newest outgoing migration's status (`none` before any). */
  get #sourceStatus(): MigrationStatus {
    return this.#out.status;
  }
  #infoOptions(): { blocktime: boolean } {
    return { blocktime: this.capabilities["postcopy-blocktime"] };
  }

  /** query-block: the drives' ids, files and sizes. */
  drives(): DriveInfo[] {
    return this.#guest.drives();
  }

  /** The address the incoming side listens on, once bound. */
  get incomingUri(): string | null {
    return this.#incoming.uri;
  }

  /**
   * QMP migrate: the seed's migrate_prepare checks refuse without a trace; past them the
   * migration exists (`setup`, migrate_init) and whatever fails now fails it: it is
   * recorded `failed` with the error, and the caller gets a {@link MigrationFailed}.
   */
  migrate(req: MigrateRequest): MigrationInfo {
    const refused = prepareProblems(req, this.#preflight());
    if (refused.length > 0) throw refused[0];
    // A resume is not a new migration: the paused one gets a new channel.
    if (req.resume) return this.#out.resume(req.uri);
    if (req.blk || req.inc) this.#setOptions(withBlockOptions(this, req), true);
    return this.#out.start(req, { ...this.capabilities }, this.#liveParams());
  }

  /**
   * Every problem a migrate with `req` would meet (its dry run): all the checks, nothing
   * started; empty when it would start.
   */
  migrationProblems(req: MigrateRequest): DomainError[] {
    const problems = migrateProblems(req, this.#preflight());
    try {
      this.#tlsFor(req.uri, "client");
    } catch (e) {
      if (e instanceof DomainError) problems.push(e);
    }
    return problems;
  }

  /** migrate-start-postcopy (switchover_control.ts), then query-migrate. */
  startPostcopy(): MigrationInfo {
    startPostcopy(this.#switchover());
    return this.query();
  }

  /** migrate-continue (switchover_control.ts), then query-migrate. */
  continueMigration(state: MigrationStatus): MigrationInfo {
    continueMigration(this.#switchover(), state);
    return this.query();
  }

  /** migrate-pause (switchover_control.ts), then query-migrate. */
  pauseMigration(): MigrationInfo {
    pauseMigration(this.#switchover());
    return this.query();
  }

  #switchover(): SwitchoverSides {
    return {
      capabilities: this.capabilities,
      sourceStatus: this.#sourceStatus,
      outgoing: this.#out,
      incoming: this.#incoming,
    };
  }

  /** migrate-recover on the destination (see IncomingSide.recover), then query-migrate. */
  async recoverIncoming(uri: string): Promise<MigrationInfo> {
    await this.#incoming.recover(uri);
    return this.query();
  }

  /** QMP migrate_cancel: a no-op when nothing runs, as in the seed. */
  cancel(): void {
    this.#out.cancel();
  }

  /**
   * migrate_cancel, then query-migrate; refused (wrong-state) once the migration is past its
   * point of no return (the destination may run the guest).
   */
  cancelMigration(): MigrationInfo {
    this.#out.cancelOrRefuse();
    return this.query();
  }

  /** QMP migrate-incoming (only with `--incoming defer`). */
  startIncoming(uri: string): Promise<MigrationInfo> {
    return this.#incoming.start(uri);
  }

  /** migrate-set-parameters: all or nothing; max-bandwidth and downtime-limit apply live. */
  setParameters(patch: Partial<Record<keyof Parameters, unknown>>): Parameters {
    this.parameters = mergeParameters(this.parameters, patch);
    this.#out.setParams(this.#liveParams());
    this.#out.prepareMultifd(); // more page channels than started ahead
    return this.parameters;
  }

  /** Page channels of a migration (x-multifd-channels with x-multifd on, else 0). */
  #multifdChannels(): number {
    return this.capabilities["x-multifd"] ? this.parameters["x-multifd-channels"] : 0;
  }

  /** The parameters a running source applies live. */
  #liveParams(): LiveParams {
    return liveParameters(this.parameters);
  }

  /** The registered migration blockers, oldest first. */
  listBlockers(): Blocker[] {
    return this.#blockers.list();
  }

  /** migrate_add_blocker. */
  addBlocker(reason: string): Blocker {
    const status = this.#sourceStatus;
    const idle = status === "none" || isFinished(status);
    return this.#blockers.add(reason, { idle, onlyMigratable: this.onlyMigratable });
  }

  /** migrate_del_blocker. */
  removeBlocker(id: string): void {
    this.#blockers.remove(id);
  }

  /** migration_global_dump: the non-option globals. */
  globals(): Globals["flags"] {
    return { ...this.#globals, "only-migratable": this.onlyMigratable };
  }

  /** migrate-set-capabilities: refused while a migration is set up or active. */
  setCapabilities(patch: Partial<Capabilities>): Capabilities {
    const current = this.#sourceStatus;
    if (isSetupOrActive(current)) throw new DomainError("active", MIGRATION_ACTIVE);
    const multifdBefore = this.capabilities["x-multifd"];
    this.capabilities = mergeCapabilities(this.capabilities, patch);
    this.#coloEnabled();
    if (!multifdBefore) {
      this.#incoming.prepareMultifd();
      this.#out.prepareMultifd();
    }
    setLateBlockActivate(this.machine.shared, this.capabilities["late-block-activate"]);
    return this.capabilities;
  }

  /** x-colo as the capabilities say; on, the output compare's digest loads meanwhile. */
  #coloEnabled(): void {
    this.colo.setEnabled(this.capabilities["x-colo"]);
    if (this.capabilities["x-colo"]) {
      loadOutputDigest().catch((e) => console.error(`ferry: COLO output digest: ${e}`));
    }
  }

  /** QMP stop; resolves to the runstate after it. */
  stopGuest(): Promise<RunState> {
    return this.#guest.stop();
  }

  /** `POST /machine/input`: appends `bytes` to a WebAssembly guest's stdin. */
  guestInput(bytes: Uint8Array): void {
    this.#guest.input(bytes);
  }

  /** QMP cont; returns the runstate after it. */
  contGuest(): RunState {
    return this.#guest.cont();
  }

  /** Stops everything (shutdown). */
  async close(): Promise<void> {
    this.cancel();
    await Promise.race([this.#out.done, new Promise((r) => setTimeout(r, 2000))]);
    this.#out.close();
    this.#incoming.close();
    this.#watch.close();
    await this.colo.close();
    await this.machine.dispose();
  }

  /** The TLS options for a channel to or from `uri` (the tls-creds parameter). */
  #tlsFor(uri: string, endpoint: "client" | "server"): TlsChannelOptions | undefined {
    return tlsOptionsFor(this.#tls, this.parameters, uri, endpoint);
  }

  #preflight(): PreflightState {
    return {
      status: this.#sourceStatus,
      runstate: this.machine.runstate,
      blocker: this.#blockers.newest(),
      capabilities: this.capabilities,
      parameters: this.parameters,
      allowExec: this.allowExec,
      wasmGuest: this.machine.shared.wasm !== undefined,
      coloSecondary: this.#incoming.current?.status === "colo",
    };
  }

  /** Block options set (`remove`: to undo when the migration ends) or undone. */
  #setOptions(o: OptionSet, remove: boolean): void {
    this.capabilities = o.capabilities;
    this.parameters = o.parameters;
    this.#mustRemoveBlock = remove;
  }

  #onTransition = (m: Migration, _from: MigrationStatus, to: MigrationStatus): void => {
    this.events.publish("MIGRATION", { status: to, side: m.side, id: m.id });
    if (m.side === "destination") {
      this.#incoming.changed(to);
      this.#output.incoming(to, this.capabilities["x-colo"]);
    } else if (
      this.#mustRemoveBlock && (to === "completed" || to === "failed" || to === "cancelled")
    ) {
      this.#setOptions(withoutBlockOptions(this), false); // in migrate_fd_cleanup
    }
    this.#watch.changed(m, to);
  };
}
