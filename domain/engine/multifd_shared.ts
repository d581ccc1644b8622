/**
 * What the source's main Worker and its multifd channel Workers share: a small control
 * block (pass generation, the packet cursor channels claim from, done count, stop/fail
 * flags) and per-channel counters. Pure layout helpers; no I/O.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";

/** Control cells (Int32Array indices). */
export const MF = {
  /** Bumped by the main side to start a pass, and by a stop; channels wait on it. */
  GEN: 0,
  /** Next packet index to claim (Atomics.add). */
  CURSOR: 1,
  /** Channels that finished the current pass. */
  DONE: 2,
  /** 1: send EOF and end. */
  STOP: 3,
  /** Channels that failed. */
  FAILED: 4,
  /** Channels connected and introduced. */
  READY: 5,
  /** 1: end the current pass early (postcopy is starting); what is unclaimed stays marked. */
  CUT: 6,
} as const;

/** Per-channel counters (Float64Array, 4 slots per channel). */
export const MF_STAT = { bytes: 0, normal: 1, duplicate: 2 } as const;

/** The shared buffers of one multifd migration. */
export interface MultifdShared {
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** The migration bitmap (one byte per page), shared with the main side. */
  bitmap: SharedArrayBuffer;
  /** One byte per page: 1 once the page went out on any channel (postcopy discards). */
  sent: SharedArrayBuffer;
}

/** Allocates the shared buffers for `channels` channels and a bitmap of `bitmapBytes`. */
export function createMultifdShared(channels: number, bitmapBytes: number): MultifdShared {
  return {
    ctl: new SharedArrayBuffer(8 * 4),
    stats: new SharedArrayBuffer(channels * 4 * 8),
    bitmap: new SharedArrayBuffer(bitmapBytes),
    sent: new SharedArrayBuffer(bitmapBytes),
  };
}

/**
 * Tells every channel to send EOF and end. STOP is set, and GEN moves too: a channel waits
 * on GEN alone, so a channel that saw STOP clear just before it began to wait would
 * otherwise sleep through the stop until its wait timed out (it did, ~1 s, in 2 of 25
 * migrations here).
 */
export function stopChannels(ctl: Int32Array): void {
  Atomics.store(ctl, MF.STOP, 1);
  Atomics.add(ctl, MF.GEN, 1);
  Atomics.notify(ctl, MF.GEN);
}

/** Sums one counter over every channel. */
export function sumStat(shared: MultifdShared, slot: number): number {
  const f = new Float64Array(shared.stats);
  let n = 0;
  for (let i = slot; i < f.length; i += 4) n += f[i];
  return n;
}

/** Starts one channel. */
export interface MultifdChannelStart {
  t: "start";
  uri: string;
  guest: SharedGuest;
  shared: MultifdShared;
  id: number;
  channels: number;
  pageCount: number;
  uuid: Uint8Array;
  rateLimit: number;
  tls?: TlsChannelOptions;
  /** The link timeout (ms): a write stuck that long fails the channel. */
  linkTimeoutMs: number;
}
