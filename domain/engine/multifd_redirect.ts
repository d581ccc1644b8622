/**
 * The source's side of opening a page channel (see wire/multifd.ts): connect to the
 * migration's URI and say HELLO; over plain TCP or unix allow a redirect, and follow the
 * destination's MULTIFD_REDIRECT to its receive thread: JOIN there with the token and go on
 * only once the thread answers MULTIFD_JOINED with the redirect's answer, which only the
 * destination knows. A destination may only send a channel next to the URI the migration was
 * given (the same TCP host on another port, or a unix socket `PATH.rxN` beside `PATH`);
 * anything else is refused. Where the thread cannot be reached or does not answer (a port
 * forward or a firewall that lets only the incoming port through; whatever listens at that
 * port there instead), the channel goes on the URI itself without a redirect, as QEMU's do.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import type { TlsChannelOptions } from "../../adapters/channels/tls.ts";
import { formatMigrationUri, parseMigrationUri } from "../../adapters/channels/uri.ts";
import { decodeFrameHeader, FRAME_HEADER_SIZE, FrameType } from "../wire/frames.ts";
import { encodeStreamHeader } from "../wire/frames.ts";
import {
  decodeJoined,
  decodeRedirect,
  encodeHello,
  encodeJoin,
  type MultifdHello,
  type MultifdRedirect,
} from "../wire/multifd.ts";
import { WireError } from "../wire/wire_error.ts";
import { LinkError } from "./failure.ts";
import { connectWithin, SourceLink } from "./source_link.ts";
import { readFull } from "./channel_io.ts";
import { isTwoWayUri } from "./peer_reason.ts";

/** Longest wait for a receive thread: connecting to it, and its MULTIFD_JOINED (ms). */
export const REDIRECT_WAIT_MS = 5000;

async function readExact(channel: Channel, n: number): Promise<Uint8Array> {
  const b = new Uint8Array(n);
  if (!await readFull(channel, b)) {
    throw new WireError("multifd: the destination closed before its answer");
  }
  return b;
}

/**
 * Reads one frame of `type` from `channel` and returns its payload, within `timeoutMs` (else
 * the channel is closed and a LinkError thrown).
 */
async function readAnswer(channel: Channel, type: number, timeoutMs: number): Promise<Uint8Array> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    channel.close();
  }, timeoutMs);
  try {
    const h = decodeFrameHeader(await readExact(channel, FRAME_HEADER_SIZE));
    if (h.type !== type) {
      throw new WireError(`multifd: answer to HELLO is frame type 0x${h.type.toString(16)}`);
    }
    return await readExact(channel, h.length);
  } catch (e) {
    if (!late) throw e;
    throw new LinkError(
      "timeout",
      `multifd: no answer to HELLO within ${+(timeoutMs / 1000).toFixed(1)} s`,
    );
  } finally {
    clearTimeout(timer);
  }
}

/** Reads MULTIFD_REDIRECT from `channel`, within `timeoutMs`. */
export async function readRedirect(channel: Channel, timeoutMs: number): Promise<MultifdRedirect> {
  return decodeRedirect(await readAnswer(channel, FrameType.MULTIFD_REDIRECT, timeoutMs));
}

/** The URI a channel of a migration to `original` follows a redirect to `address` at. */
export function redirectUri(original: string, address: string): string {
  const refuse = () =>
    new WireError(`multifd: redirect to '${address}' is not next to ${original}`);
  const o = parseMigrationUri(original, "outgoing");
  let r;
  try {
    r = parseMigrationUri(address, "outgoing");
  } catch {
    throw refuse();
  }
  if (o.kind === "tcp" && r.kind === "tcp" && r.port >= 1 && r.port <= 65535) {
    return formatMigrationUri({ kind: "tcp", host: o.host, port: r.port });
  }
  if (
    o.kind === "unix" && r.kind === "unix" && r.path.startsWith(`${o.path}.rx`) &&
    /^\d{1,3}$/.test(r.path.slice(o.path.length + 3))
  ) {
    return formatMigrationUri(r);
  }
  throw refuse();
}

/** How a page channel is opened. */
export interface PageChannelOptions {
  tls?: TlsChannelOptions;
  /** The link timeout (ms). */
  timeoutMs: number;
  /** This channel's share of max-bandwidth. */
  rateLimit: number;
  /** Hears why a redirect was not followed (the channel went on the URI instead). */
  onFallback?: (why: string) => void;
}

/** An open page channel: its link, and the bytes written on connections it left. */
export interface OpenedChannel {
  link: SourceLink;
  bytesBefore: number;
}

async function say(link: SourceLink, ...frames: Uint8Array[]): Promise<void> {
  for (const f of frames) await link.writer.write(f);
}

/**
 * Opens page channel `hello` (uuid, id, count) of a migration to `uri`, ready for its pages
 * (see the module doc).
 */
export async function openPageChannel(
  uri: string,
  hello: MultifdHello,
  opts: PageChannelOptions,
): Promise<OpenedChannel> {
  const linkOpts = { timeoutMs: opts.timeoutMs, rateLimit: opts.rateLimit, answers: false };
  const open = () => SourceLink.open(() => connectChannel(uri, { tls: opts.tls }), linkOpts);
  const redirectable = !opts.tls && isTwoWayUri(uri);
  const first = await open();
  await say(first, encodeStreamHeader("multifd"), encodeHello({ ...hello, redirectable }));
  if (!redirectable) return { link: first, bytesBefore: 0 };
  let r: MultifdRedirect;
  try {
    r = await readRedirect(first.channel, opts.timeoutMs);
  } catch (e) {
    first.close();
    throw e;
  }
  if (r.address === "") return { link: first, bytesBefore: 0 };
  let bytesBefore = first.writer.bytesWritten;
  first.close();
  const to = redirectUri(uri, r.address); // a destination that points elsewhere is refused
  let moved: SourceLink | null = null;
  try {
    moved = await SourceLink.open(
      () => connectWithin(() => connectChannel(to), Math.min(opts.timeoutMs, REDIRECT_WAIT_MS)),
      linkOpts,
    );
    await say(moved, encodeStreamHeader("multifd"), encodeJoin(r.token));
    const answer = decodeJoined(
      await readAnswer(
        moved.channel,
        FrameType.MULTIFD_JOINED,
        Math.min(opts.timeoutMs, REDIRECT_WAIT_MS),
      ),
    );
    if (!answer.every((b, i) => b === r.answer[i])) {
      throw new WireError(`multifd: ${to} answered, but not as the destination's receive thread`);
    }
    return { link: moved, bytesBefore };
  } catch (e) {
    bytesBefore += moved?.writer.bytesWritten ?? 0;
    moved?.close();
    opts.onFallback?.(
      `multifd channel ${hello.id}: its receive thread at ${to} was not reached ` +
        `(${e instanceof Error ? e.message : e}); the channel goes on ${uri}`,
    );
  }
  const again = await open();
  await say(again, encodeStreamHeader("multifd"), encodeHello(hello));
  return { link: again, bytesBefore };
}
