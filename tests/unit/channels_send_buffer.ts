/**
 * A loopback TCP sender's send buffer (adapters/channels/send_buffer.ts): connectTcp caps it at
 * 1 MiB, on the connection's own socket only, found among the process's other sockets by its
 * two addresses; what is sent still arrives whole.
 */
import assert from "node:assert/strict";
import {
  isLoopbackHost,
  LOOPBACK_SEND_BUFFER,
  sendBufferBytes,
  tcpConnFd,
} from "../../adapters/channels/send_buffer.ts";
import type { ConnChannel } from "../../adapters/channels/conn_channel.ts";
import { connectTcp, listenTcp } from "../../adapters/channels/tcp.ts";

const linux = Deno.build.os === "linux";

Deno.test("isLoopbackHost: 127/8, ::1 and IPv4-mapped 127/8 only", () => {
  for (const h of ["127.0.0.1", "127.255.0.9", "::1", "[::1]", "::ffff:127.0.0.1"]) {
    assert.ok(isLoopbackHost(h), h);
  }
  for (const h of ["0.0.0.0", "10.0.0.1", "128.0.0.1", "::", "::2", "localhost", "1127.0.0.1"]) {
    assert.ok(!isLoopbackHost(h), h);
  }
});

Deno.test({
  name: "connectTcp to a loopback peer: a 1 MiB send buffer on its socket alone; bytes arrive",
  ignore: !linux,
  fn: async () => {
    const listener = listenTcp("127.0.0.1", 0);
    const port = Number(listener.uri.split(":").pop());
    // Other sockets of this process with the same two ports, swapped: the accepted end.
    const other = await Deno.connect({ hostname: "127.0.0.1", port });
    const otherEnd = await listener.accept() as ConnChannel;
    const sender = await connectTcp("127.0.0.1", port);
    const receiver = await listener.accept() as ConnChannel;
    listener.close();
    try {
      // The kernel doubles what is asked (for its own bookkeeping) and reports that.
      assert.equal(sendBufferBytes(sender), 2 * LOOPBACK_SEND_BUFFER);
      // The accepted end shares the sender's ports (swapped) and keeps the kernel's buffer;
      // so does a plain connection to the same listener.
      for (const c of [receiver, other, otherEnd]) {
        assert.notEqual(sendBufferBytes(c), null);
        assert.notEqual(sendBufferBytes(c), 2 * LOOPBACK_SEND_BUFFER);
      }
      const fds = [sender, receiver, other, otherEnd].map((c) => tcpConnFd(c));
      assert.equal(new Set(fds).size, 4, `four sockets, four descriptors: ${fds}`);
      // 8 MiB through the capped buffer arrive whole.
      const data = new Uint8Array(8 << 20);
      for (let i = 0; i < data.length; i += 4096) data[i] = (i >> 12) & 255;
      const got = new Uint8Array(data.length);
      const reading = (async () => {
        for (let o = 0; o < got.length;) {
          const n = await receiver.read(got.subarray(o));
          if (n === null) throw new Error(`end of stream after ${o} bytes`);
          o += n;
        }
      })();
      for (let o = 0; o < data.length;) o += await sender.write(data.subarray(o));
      await reading;
      assert.deepEqual(got, data);
    } finally {
      for (const c of [sender, receiver, other, otherEnd]) c.close();
    }
  },
});
