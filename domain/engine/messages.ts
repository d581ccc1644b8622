/**
 * Messages between the main thread (which owns the state machine and the API) and the
 * data-path Workers. Workers never write status: they ask with `transition` and wait
 * for the answer; the main thread's compare-and-set decides.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { MigrationStatus } from "../state_machine.ts";
import type { Capabilities, LiveParameters } from "../options.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import type { CodecAnswer, CodecRequest } from "../codecs/codec_threads.ts";
import type { ColoReport } from "../colo_state.ts";
import type { ForwardedRecord } from "./colo_records.ts";

/** The parameters, sent at start and again on every change (some apply live). */
export type LiveParams = LiveParameters;

/** Starts an outgoing migration in a source Worker. */
export interface SourceStart {
  t: "start";
  uri: string;
  guest: SharedGuest;
  stats: Float64Array;
  status: Int32Array;
  params: LiveParams;
  /** Fixed for the migration, as QEMU refuses changes while one runs. */
  caps: Capabilities;
  /** With tls-creds: every channel (main, return path, multifd) is TLS. */
  tls?: TlsChannelOptions;
  /**
   * With x-multifd: one port per page-channel Worker, started by the main thread (a Worker
   * started inside this Worker takes ~1 s to come up in Deno 2.9).
   */
  multifdPorts?: MessagePort[];
  /** The migration's point of no return (no_return.ts), shared with the main thread. */
  point: Int32Array;
  /** The link timeout (ms; link_watch.ts), when not the default. */
  linkTimeoutMs?: number;
  /** `--colo-arbiter`: a primary that lost its secondary holds for the arbiter's verdict. */
  coloArbiter?: boolean;
  /** Bytes of guest input the main thread handed this Worker (COLO) not given yet (colo_input.ts). */
  coloInputWaiting?: Int32Array;
  /**
   * A postcopy whose data path died after the point of no return: this Worker resumes it on
   * `uri` (the recovery handshake), then serves the pages the destination still lacks.
   */
  recover?: { uri: string; tls?: TlsChannelOptions };
}

/** Starts listening for incoming migrations in a destination Worker. */
export interface DestinationStart {
  t: "start";
  uri: string;
  guest: SharedGuest;
  stats: Float64Array;
  status: Int32Array;
  /** QEMU's autostart: false with -S. */
  autostart: boolean;
  /** With tls-creds: the listener (and a recovery listener) speaks TLS. */
  tls?: TlsChannelOptions;
  /** decompress-threads, for compressed pages. */
  decompressThreads: number;
  /** The link timeout (ms; link_watch.ts), when not the default. */
  linkTimeoutMs?: number;
  /** `--arrival-digest`: keep the digest of RAM as it arrived. */
  arrivalDigest?: boolean;
  /** The agent's x-colo now (1 = on), written by the main thread on every change. */
  colo?: Int32Array;
  /** `--colo-arbiter`: a secondary that lost its primary holds for the arbiter's verdict. */
  coloArbiter?: boolean;
}

/** Worker → main. */
export type WorkerMessage =
  | { t: "transition"; seq: number; from: MigrationStatus; to: MigrationStatus }
  | { t: "pass"; pass: number }
  | { t: "error"; message: string }
  | { t: "listening"; uri: string }
  | { t: "rearm" }
  | { t: "arrived" }
  /** A migrate-recover could not listen (`message` says why). */
  | { t: "recover-failed"; message: string }
  /** Something worth a log line that is not the migration's error. */
  | { t: "notice"; message: string }
  /** COLO entered, held or left (colo_state.ts). */
  | ColoReport
  /** Codec Workers for a compression pool, started by the main thread (codec_threads.ts). */
  | CodecRequest
  | { t: "done" };

/** Main → Worker, after start. */
export type MainMessage =
  | { t: "transition-result"; seq: number; ok: boolean }
  | { t: "cancel" }
  /**
   * An idle Worker makes its data path hot for the next migration (warm_up.ts), on scratch
   * guests shaped like `guest` (the agent's; not touched).
   */
  | { t: "warm-up"; guest?: SharedGuest }
  | { t: "params"; params: LiveParams }
  | { t: "postcopy" }
  | { t: "auto-converge" }
  | { t: "continue" }
  | { t: "pause" }
  | { t: "resume"; uri: string; tls?: TlsChannelOptions }
  | { t: "recover"; uri: string }
  | { t: "stop" }
  | { t: "multifd-crash"; id: number; message: string }
  /** The destination's x-multifd went on: start receive threads for this many channels. */
  | { t: "multifd-prepare"; channels: number }
  /**
   * x-colo-lost-heartbeat: leave COLO and run on alone; with an arbiter's `verdict`, run on
   * alone (won) or stop (lost) (colo_arbiter.ts).
   */
  | { t: "colo-lost-heartbeat"; verdict?: "won" | "lost" }
  /** COLO primary: the output compare wants a checkpoint now. */
  | { t: "colo-checkpoint" }
  /** COLO secondary: its guest wrote output record `seq` (`digest`: its bytes' SHA-256). */
  | { t: "colo-output"; seq: number; digest: Uint8Array }
  /**
   * COLO primary: its guest's output records, oldest first (colo_records.ts): one new one, or
   * the output's backlog as COLO begins.
   */
  | { t: "colo-records"; records: ForwardedRecord[] }
  | { t: "colo-input"; bytes: Uint8Array }
  | CodecAnswer;
