/**
 * What one incoming migration's run is given: the guest, the shared counters, the link to the
 * main thread, how to get a recovery channel, the multifd registry and its options.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { Channel } from "../ports.ts";
import type { ColoControl } from "./dest_colo.ts";
import type { MainLink } from "./main_link.ts";
import type { MultifdRegistry } from "./multifd_dest.ts";

/** What one incoming run needs. */
export interface DestinationContext {
  guest: SharedGuest;
  stats: Float64Array;
  link: MainLink;
  autostart: boolean;
  /** Resolves with the channel of a migrate-recover once one is accepted. */
  awaitRecovery: () => Promise<Channel>;
  /** Lets the worker shut the current channel (migrate-pause on the destination). */
  onChannel: (ch: Channel | null) => void;
  /** Where multifd page channels wait for the main stream's MULTIFD_SETUP. */
  multifd?: MultifdRegistry;
  /** decompress-threads (compressed pages). */
  decompressThreads?: number;
  /** The channel is a socket: a refusal's reason can go back to the source on it. */
  twoWay?: boolean;
  /** The link timeout (ms; default DEFAULT_LINK_TIMEOUT_MS): see link_watch.ts. */
  linkTimeoutMs?: number;
  /** Keep the digest of RAM as it arrived (`--arrival-digest`): snapshot, then `arrived`. */
  arrivalDigest?: boolean;
  /** x-colo here, and lost-heartbeat (dest_colo.ts). */
  colo?: ColoControl;
}
