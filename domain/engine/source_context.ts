/**
 * What one outgoing migration's run is given: the guest, the shared counters, the link to
 * the main thread, the options, the mailbox, the way to connect, and the point of no return.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import type { Capabilities } from "../options.ts";
import type { Channel } from "../ports.ts";
import type { LiveParams } from "./messages.ts";
import type { MainLink } from "./main_link.ts";
import type { PointOfNoReturn } from "./no_return.ts";
import type { SourceControl } from "./source_control.ts";

/** Everything the run needs; `connect` opens a channel (so tests can pass a memory pair). */
export interface SourceContext {
  guest: SharedGuest;
  stats: Float64Array;
  link: MainLink;
  params: LiveParams;
  caps: Capabilities;
  control: SourceControl;
  /** The migration's URI (multifd channels connect to it too). */
  uri: string;
  /** TLS for every channel, with tls-creds. */
  tls?: TlsChannelOptions;
  /** The link timeout (ms; default DEFAULT_LINK_TIMEOUT_MS): see link_watch.ts. */
  linkTimeoutMs?: number;
  /** `--colo-arbiter`: a primary that lost its secondary holds for the verdict (colo_arbiter.ts). */
  coloArbiter?: boolean;
  /** Bytes of guest input handed over by the main thread (COLO) and not given yet (colo_input.ts). */
  coloInputWaiting?: Int32Array;
  /** Opens the migration's channel, or the one given on resume. */
  connect: (uri?: string) => Promise<Channel>;
  /** Called with the writer once it exists, so cancel can shut it down. */
  onWriter: (w: ChannelWriter | null) => void;
  /** Ports of page-channel Workers the main thread started (else they start here). */
  multifdPorts?: MessagePort[];
  /** Set by the run: reports a page-channel Worker that crashed. */
  onMultifdCrash?: (id: number, message: string) => void;
  /** The migration's point of no return, shared with the main thread's cancel. */
  point: PointOfNoReturn;
  /**
   * A postcopy whose earlier data path died after the point of no return (status
   * postcopy-paused): recover on `control.resumeUri`, then serve the missing pages.
   */
  recovering?: boolean;
  /**
   * The Worker's warm-up (warm_up.ts) under way, if any: the run waits for it inside its
   * set-up, so the wait counts in setup-time as QEMU counts its thread's own set-up.
   */
  warmedUp?: Promise<unknown>;
}
