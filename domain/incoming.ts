/**
 * The incoming side: `--incoming URI` or `--incoming defer` + migrate-incoming. One
 * destination Worker listens and loads streams; each accepted attempt is a migration
 * resource. After a failed attempt the agent listens again, as a fresh migration in
 * `setup`; after a completed one it stops listening.
 *
 * @module
 */
import type { SharedGuest } from "../adapters/memory/guest_ram.ts";
import { VcpuControl } from "../adapters/memory/vcpu_control.ts";
import type { ColoReport } from "./colo_state.ts";
import type { DestinationStart } from "./engine/messages.ts";
import type { TlsChannelOptions } from "../adapters/channels/tls.ts";
import { Migration, type MigrationListener } from "./migration.ts";
import { WorkerHost } from "./worker_host.ts";

const DEST_WORKER = new URL("./engine/dest_worker.ts", import.meta.url);

/** Listens for and loads incoming migrations. */
export class Incoming {
  current: Migration;
  /** The URI asked for (before a port 0 is resolved). */
  readonly requestedUri: string;
  /** The bound address once listening (port 0 resolved). */
  listeningUri: string | null = null;
  readonly #host: WorkerHost;
  readonly #listener: MigrationListener;
  /** Wakes whoever waits for a status change of the current migration. */
  readonly #changed = new Set<() => void>();
  /** The migrate-recover waiting for its listener. */
  #recovering: { resolve: () => void; reject: (e: Error) => void } | null = null;
  readonly #onNew: (m: Migration) => void;
  readonly ready: Promise<void>;

  /** Starts listening on `uri`; `onNew` hears each new migration record. */
  constructor(
    uri: string,
    tls: TlsChannelOptions | undefined,
    decompressThreads: number,
    guest: SharedGuest,
    autostart: boolean,
    listener: MigrationListener,
    onNew: (m: Migration) => void,
    onArrived: () => void,
    options: {
      linkTimeoutMs?: number;
      arrivalDigest?: boolean;
      /** The agent's x-colo cell and who hears the data path's COLO reports. */
      colo?: { enabled: Int32Array; arbitrated: boolean; report(m: ColoReport): void };
    } = {},
  ) {
    this.#listener = (m, from, to) => {
      listener(m, from, to);
      for (const wake of this.#changed) wake();
    };
    this.#onNew = onNew;
    this.requestedUri = uri;
    this.current = this.#fresh(uri);
    let ready = () => {};
    this.ready = new Promise((r) => (ready = r));
    const start: DestinationStart = {
      t: "start",
      uri,
      guest,
      stats: this.current.stats,
      status: this.current.statusCell,
      autostart,
      tls,
      decompressThreads,
      linkTimeoutMs: options.linkTimeoutMs,
      arrivalDigest: options.arrivalDigest,
      colo: options.colo?.enabled,
      coloArbiter: options.colo?.arbitrated,
    };
    this.#host = new WorkerHost(DEST_WORKER, start, {
      current: () => this.current,
      onListening: (bound) => {
        this.listeningUri = bound;
        ready();
        this.#recovering?.resolve();
        this.#recovering = null;
      },
      onArrived,
      onColo: (m) => options.colo?.report(m),
      onRecoverFailed: (message) => {
        this.recoverTriggered = false;
        this.#recovering?.reject(new Error(message));
        this.#recovering = null;
      },
      onRearm: () => {
        const next = this.#fresh(uri, this.current);
        this.current = next;
      },
      onDone: (crash) => {
        const m = this.current.machine;
        if (crash !== undefined) this.current.setError(`data path crashed: ${crash}`);
        if (m.status === "setup" || m.status === "active") {
          this.current.setError("incoming data path ended unexpectedly");
          m.transition(m.status, "failed");
        }
        if (m.status === "colo") {
          // The secondary's data path died: its connection ended, so the primary runs on alone;
          // this guest must not.
          new VcpuControl(guest).setRunstate("paused");
          this.current.setError("incoming data path ended in COLO");
          options.colo?.report({ t: "colo", what: "exit", reason: "error" });
          m.transition("colo", "failed");
        }
        ready();
      },
    });
  }

  #fresh(uri: string, previous?: Migration): Migration {
    // A new attempt shares the Worker's counters and status cell with the previous one.
    const m = new Migration("destination", uri, this.#listener, previous);
    Atomics.store(m.statusCell, 0, 0);
    this.#onNew(m);
    m.machine.transition("none", "setup");
    return m;
  }

  /** True between a migrate-recover and the end of that recovery attempt. */
  recoverTriggered = false;

  /** x-colo-lost-heartbeat (or an arbiter's verdict) for the secondary. */
  lostHeartbeat(verdict?: "won" | "lost"): void {
    this.#host.post({ t: "colo-lost-heartbeat", ...(verdict ? { verdict } : {}) });
  }

  /** COLO secondary: its guest's output record `seq` for the primary (RP_COLO_OUTPUT). */
  coloOutput(seq: number, digest: Uint8Array): void {
    this.#host.post({ t: "colo-output", seq, digest });
  }

  /** x-multifd went on: the incoming Worker starts receive threads for `channels`. */
  prepareMultifd(channels: number): void {
    this.#host.post({ t: "multifd-prepare", channels });
  }

  /** migrate-pause on the destination: shut the current channel (postcopy pauses). */
  pause(): void {
    this.#host.post({ t: "pause" });
  }

  /**
   * Resolves once the current migration leaves `status` (true), or after `ms` (false). A
   * destination still in postcopy-active may be about to notice that its source paused.
   */
  async leaves(status: string, ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (this.current.status === status) {
      const left = end - Date.now();
      if (left <= 0) return false;
      await new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          this.#changed.delete(done);
          resolve();
        };
        const timer = setTimeout(done, left);
        this.#changed.add(done);
      });
    }
    return true;
  }

  /**
   * migrate-recover: listens on `uri` for the source's resumed stream; resolves once it
   * listens (so a resume sent after the answer finds it), rejects when it cannot.
   */
  recover(uri: string): Promise<void> {
    this.recoverTriggered = true;
    const listening = new Promise<void>((resolve, reject) => {
      this.#recovering = { resolve, reject };
    });
    this.#host.post({ t: "recover", uri });
    return listening;
  }

  /** Stops listening (agent shutdown). */
  close(): void {
    this.#host.post({ t: "stop" });
    this.#host.terminate();
  }
}
