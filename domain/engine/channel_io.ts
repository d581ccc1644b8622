/**
 * Whole reads and writes on a channel, for the few small messages the engine exchanges
 * outside a frame reader or a counting writer (a redirect, a JOIN's answer, the return path's
 * headers, a destination's reason).
 *
 * @module
 */
import type { Channel } from "../ports.ts";

/** Reads exactly `buf.length` bytes into `buf`; false at the end of the stream. */
export async function readFull(channel: Channel, buf: Uint8Array): Promise<boolean> {
  let got = 0;
  while (got < buf.length) {
    const n = await channel.read(buf.subarray(got));
    if (n === null) return false;
    got += n;
  }
  return true;
}

/** Writes all of `bytes` (a channel may take fewer at a time). */
export async function writeAll(channel: Channel, bytes: Uint8Array): Promise<void> {
  for (let off = 0; off < bytes.length;) off += await channel.write(bytes.subarray(off));
}
