/**
 * The source's side of a page channel's redirect (see wire/multifd.ts): read the
 * destination's MULTIFD_REDIRECT answer to a redirectable HELLO, and check where it points.
 * A destination may only send a channel next to the URI the migration was given: the same
 * TCP host (another port), or a unix socket `PATH.rxN` beside `PATH`; anything else is refused.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import { formatMigrationUri, parseMigrationUri } from "../../adapters/channels/uri.ts";
import { decodeFrameHeader, FRAME_HEADER_SIZE, FrameType } from "../wire/frames.ts";
import { decodeRedirect, type MultifdRedirect } from "../wire/multifd.ts";
import { WireError } from "../wire/wire_error.ts";
import { LinkError } from "./failure.ts";

async function readExact(channel: Channel, n: number): Promise<Uint8Array> {
  const b = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const r = await channel.read(b.subarray(off));
    if (r === null) throw new WireError("multifd: the destination closed before its answer");
    off += r;
  }
  return b;
}

/**
 * Reads MULTIFD_REDIRECT from `channel`, within `timeoutMs` (else the channel is closed and
 * a LinkError thrown).
 */
export async function readRedirect(channel: Channel, timeoutMs: number): Promise<MultifdRedirect> {
  let late = false;
  const timer = setTimeout(() => {
    late = true;
    channel.close();
  }, timeoutMs);
  try {
    const h = decodeFrameHeader(await readExact(channel, FRAME_HEADER_SIZE));
    if (h.type !== FrameType.MULTIFD_REDIRECT) {
      throw new WireError(`multifd: answer to HELLO is frame type 0x${h.type.toString(16)}`);
    }
    return decodeRedirect(await readExact(channel, h.length));
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
