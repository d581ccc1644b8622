/**
 * The agent's incoming side: `--incoming URI`, `--incoming defer` + migrate-incoming, and
 * migrate-recover, with the seed's checks and texts. It owns the {@link Incoming} listener
 * and says which incoming migration is current.
 *
 * @module
 */
import type { Machine } from "../adapters/memory/machine.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import { parseMigrationUri } from "../adapters/channels/uri.ts";
import { DomainError } from "./errors.ts";
import { requireExecAllowed } from "./exec_policy.ts";
import type { EventBus } from "./event_bus.ts";
import type { ColoState } from "./colo_state.ts";
import { Incoming } from "./incoming.ts";
import type { Migration, MigrationListener } from "./migration.ts";
import { type MigrationInfo, migrationInfo } from "./migration_info.ts";
import type { MigrationStatus } from "./state_machine.ts";

/**
 * How long a migrate-recover waits for a postcopy-active destination to notice that its
 * source paused: the source shuts the channel before it reports postcopy-paused, so this
 * is the time for that shutdown to cross the link and the destination's reader to see it
 * (milliseconds on a quiet host; the bound allows for a busy one).
 */
export const RECOVER_NOTICE_MS = 2000;

/** What the incoming side uses of its agent. */
export interface IncomingDeps {
  machine: Machine;
  events: EventBus;
  /** TLS for a listener on `uri` (the tls-creds parameter), or undefined. */
  tlsFor(uri: string): TlsChannelOptions | undefined;
  /** The decompress-threads parameter now. */
  decompressThreads(): number;
  /** x-multifd-channels with x-multifd on, else 0 (receive threads start ahead). */
  multifdChannels(): number;
  /** Hears every status change of every incoming migration. */
  listener: MigrationListener;
  /** Records a new incoming migration in the agent's history. */
  record(m: Migration): void;
  /** `--allow-exec`: `exec:` URIs are taken. */
  allowExec: boolean;
  /** The link timeout (ms; engine/link_watch.ts), when not the default. */
  linkTimeoutMs?: number;
  /** `--arrival-digest`: a destination keeps the digest of RAM as it arrived. */
  arrivalDigest?: boolean;
  /** The agent's COLO status (x-colo, and the data path's reports). */
  colo?: ColoState;
}

/** Incoming migrations of one agent. */
export class IncomingSide {
  readonly #deps: IncomingDeps;
  readonly #deferred: boolean;
  #incoming: Incoming | null = null;
  #started = false;

  /** An incoming side; `deferred` with `--incoming defer`. */
  constructor(deps: IncomingDeps, deferred: boolean) {
    this.#deps = deps;
    this.#deferred = deferred;
  }

  /** The current incoming migration, if any. */
  get current(): Migration | null {
    return this.#incoming?.current ?? null;
  }

  /** The address listened on, once bound. */
  get uri(): string | null {
    return this.#incoming?.listeningUri ?? null;
  }

  /** `--incoming URI` (and migrate-incoming): listens; throws when it cannot. */
  async listen(uri: string, autostart: boolean): Promise<void> {
    const { machine } = this.#deps;
    machine.clearArrival();
    this.#incoming = new Incoming(
      uri,
      this.#deps.tlsFor(uri),
      this.#deps.decompressThreads(),
      machine.shared,
      autostart,
      this.#deps.listener,
      (m) => this.#deps.record(m),
      () => machine.captureArrival(),
      {
        linkTimeoutMs: this.#deps.linkTimeoutMs,
        arrivalDigest: this.#deps.arrivalDigest,
        colo: this.#deps.colo,
      },
    );
    this.prepareMultifd();
    await this.#incoming.ready;
    const failed = this.#incoming.current;
    if (failed.status === "failed") {
      throw new DomainError("invalid-value", failed.error ?? "listen failed");
    }
    this.#started = true;
  }

  /** With x-multifd on here (QEMU's destination sets it too), receive threads start now. */
  prepareMultifd(): void {
    const channels = this.#deps.multifdChannels();
    if (channels > 0) this.#incoming?.prepareMultifd(channels);
  }

  /** QMP migrate-incoming (only with `--incoming defer`). */
  async start(uri: string): Promise<MigrationInfo> {
    if (!this.#deferred) throw new DomainError("wrong-state", "For use with '-incoming defer'");
    try {
      parseMigrationUri(uri, "incoming");
    } catch (e) {
      throw new DomainError("invalid-value", (e as Error).message);
    }
    requireExecAllowed(uri, "incoming", this.#deps.allowExec);
    const current = this.#incoming?.current;
    // After a failed attempt the agent takes the next one (unlike QEMU, which exits):
    // the same URI is already listening again; another URI replaces the listener.
    const afterFailure = current?.status === "failed";
    if (this.#started && !afterFailure) {
      throw new DomainError("wrong-state", "The incoming migration has already been started");
    }
    if (afterFailure && this.#incoming!.requestedUri === uri) return migrationInfo(current!);
    if (afterFailure) this.#incoming!.close();
    await this.listen(uri, this.#deps.machine.runstate !== "paused");
    return migrationInfo(this.#incoming!.current);
  }

  /**
   * migrate-recover: listen on `uri` for the resumed stream. A destination still
   * postcopy-active may not have noticed yet that its source paused (the source's shutdown
   * is on its way): it is given {@link RECOVER_NOTICE_MS} to get there. Resolves once
   * listening, as the seed's synchronous listen does, so a resume sent after the answer
   * connects at the first try.
   */
  async recover(uri: string): Promise<void> {
    // Ferry's permission check comes first, in any state (as a resume's does): refused
    // before anything is waited for or changed.
    requireExecAllowed(uri, "incoming", this.#deps.allowExec);
    const incoming = this.#incoming;
    if (incoming?.current.status === "postcopy-active") {
      await incoming.leaves("postcopy-active", RECOVER_NOTICE_MS);
    }
    if (!incoming || incoming.current.status !== "postcopy-paused") {
      throw new DomainError(
        "wrong-state",
        "Migrate recover can only be run when postcopy is paused.",
      );
    }
    if (incoming.recoverTriggered) {
      throw new DomainError("wrong-state", "Migrate recovery is triggered already");
    }
    try {
      parseMigrationUri(uri, "incoming");
    } catch (e) {
      throw new DomainError("invalid-value", (e as Error).message);
    }
    // qemu_start_incoming_migration announces every incoming start, a recovery's too,
    // without a change of state: the event says `setup`, the status stays postcopy-paused.
    const m = incoming.current;
    this.#deps.events.publish("MIGRATION", { status: "setup", side: m.side, id: m.id });
    m.note(`recover: ${uri}`);
    try {
      await incoming.recover(uri);
    } catch (e) {
      throw new DomainError("invalid-value", `migrate-recover: ${(e as Error).message}`);
    }
  }

  /** Called on every incoming status change: a finished recovery allows the next one. */
  changed(to: MigrationStatus): void {
    if ((to === "postcopy-paused" || to === "postcopy-active") && this.#incoming) {
      this.#incoming.recoverTriggered = false;
    }
  }

  /** migrate-pause on the destination, when its migration is postcopy-active. */
  pause(): boolean {
    if (this.#incoming?.current.status !== "postcopy-active") return false;
    this.#incoming.pause();
    return true;
  }

  /** x-colo-lost-heartbeat (or an arbiter's verdict) for the secondary: false outside COLO. */
  lostHeartbeat(verdict?: "won" | "lost"): boolean {
    if (this.#incoming?.current.status !== "colo") return false;
    this.#incoming.lostHeartbeat(verdict);
    return true;
  }

  /** COLO secondary: tells the primary about an output record (see Incoming.coloOutput). */
  coloOutput(seq: number, digest: Uint8Array): void {
    if (this.#incoming?.current.status === "colo") this.#incoming.coloOutput(seq, digest);
  }

  /** Stops listening (agent shutdown). */
  close(): void {
    this.#incoming?.close();
  }
}
