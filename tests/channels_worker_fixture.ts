/**
 * Worker used by unit/channels_socket.ts: connects to the URI it is sent, writes `bytes`
 * pseudo-random bytes through a ChannelWriter, half-closes (for exec: waits for the command to exit), and reports the count.
 *
 * @module
 */

/// <reference lib="deno.worker" />

import { ChannelWriter } from "../adapters/channels/channel_writer.ts";
import { connectChannel } from "../adapters/channels/connect.ts";
import { ExecChannel } from "../adapters/channels/exec.ts";
import { pseudoRandomBytes } from "./channels_helpers.ts";

self.onmessage = async (e: MessageEvent<{ uri: string; bytes: number; seed: number }>) => {
  const { uri, bytes, seed } = e.data;
  try {
    const channel = await connectChannel(uri);
    const writer = new ChannelWriter(channel);
    const data = pseudoRandomBytes(bytes, seed);
    for (let off = 0; off < bytes; off += 1 << 20) {
      await writer.write(data.subarray(off, off + (1 << 20)));
    }
    await channel.closeWrite();
    channel.close();
    if (channel instanceof ExecChannel) await channel.waitExit();
    self.postMessage({ ok: true, written: writer.bytesWritten });
  } catch (err) {
    self.postMessage({ ok: false, error: String(err) });
  }
};
