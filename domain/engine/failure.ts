/**
 * Why a migration's data path stopped, decided by type and code, never by message text:
 *
 * - `cancel`: migrate_cancel ({@link Cancelled}); the run unwinds without an error of its own.
 * - `link`: the channel stopped carrying bytes — an end of stream before the stream was
 *   complete, a reset or closed socket, a shut-down writer, a dead peer noticed by the
 *   keepalive ({@link LinkError}). Postcopy pauses on it (the guest runs on the destination).
 * - `protocol`: the peer sent bytes that break the format or the order ({@link WireError}
 *   with code `protocol`); the attempt fails, postcopy too.
 * - `peer`: the peer reported its own failure (the destination's SHUT with an error,
 *   {@link PeerError}); the attempt fails.
 * - `local`: anything else (this side's own trouble).
 *
 * @module
 */
import { ChannelShutdownError } from "../../adapters/channels/channel_writer.ts";
import {
  BrokenPipeError,
  ChannelClosedError,
  ConnectionLostError,
} from "../../adapters/channels/errors.ts";
import { WireError } from "../wire/wire_error.ts";
import { Cancelled } from "./cancelled.ts";

/** How a migration's data path stopped (see the module doc). */
export type FailureKind = "cancel" | "link" | "protocol" | "peer" | "local";

/**
 * Why a link was given up: `timeout`, the peer said nothing for too long (keepalive);
 * `stalled`, a write made no progress for too long (the peer stopped reading); `connect`, a
 * connection could not be made in time.
 */
export type LinkCode = "timeout" | "stalled" | "connect";

/** A link given up by this side (a dead peer noticed); the message says after how long. */
export class LinkError extends Error {
  /** See {@link LinkCode}. */
  readonly code: LinkCode;

  /** Creates a link error with a user-facing message. */
  constructor(code: LinkCode, message: string) {
    super(message);
    this.name = "LinkError";
    this.code = code;
  }
}

/** The peer reported a failure of its own (the destination's SHUT with a non-zero value). */
export class PeerError extends Error {
  /** The value the peer reported. */
  readonly value: number;

  /** Creates a peer error; `message` is the user-facing text. */
  constructor(value: number, message: string) {
    super(message);
    this.name = "PeerError";
    this.value = value;
  }
}

/** Deno's own errors that mean the connection is gone. */
const DENO_LINK_ERRORS: (new (...args: never[]) => Error)[] = [
  Deno.errors.BrokenPipe,
  Deno.errors.ConnectionReset,
  Deno.errors.ConnectionAborted,
  Deno.errors.NotConnected,
  Deno.errors.BadResource,
  Deno.errors.Interrupted,
  Deno.errors.UnexpectedEof,
  Deno.errors.TimedOut,
];

/** The kind of `e` (see the module doc). */
export function failureKind(e: unknown): FailureKind {
  if (e instanceof Cancelled) return "cancel";
  if (e instanceof WireError) return e.code === "truncated" ? "link" : "protocol";
  if (e instanceof PeerError) return "peer";
  if (e instanceof TypedFailure) return e.kind;
  if (
    e instanceof LinkError || e instanceof ChannelShutdownError ||
    e instanceof ChannelClosedError || e instanceof BrokenPipeError ||
    e instanceof ConnectionLostError || DENO_LINK_ERRORS.some((c) => e instanceof c)
  ) {
    return "link";
  }
  return "local";
}

/** An error that crossed a Worker boundary: its kind and text, as sent. */
export interface FailureRecord {
  kind: FailureKind;
  message: string;
}

/** An error rebuilt from a {@link FailureRecord}; keeps its kind. */
export class TypedFailure extends Error {
  /** The kind it had where it happened. */
  readonly kind: FailureKind;

  /** Rebuilds a failure of `kind` with `message`. */
  constructor(kind: FailureKind, message: string) {
    super(message);
    this.name = "TypedFailure";
    this.kind = kind;
  }
}

/** `e` as something a Worker can post (its kind and text). */
export function failureRecord(e: unknown): FailureRecord {
  return { kind: failureKind(e), message: e instanceof Error ? e.message : String(e) };
}
