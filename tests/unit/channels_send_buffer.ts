/**
 * A sender's send buffer (adapters/channels/send_buffer.ts): connectTcp caps a loopback one at
 * 1 MiB, on the connection's own socket only, found among the process's other sockets by its
 * two addresses; connectUnix raises it to 4 MiB on the sockets connected to its path, and no
 * other; what is sent still arrives whole.
 */
import assert from "node:assert/strict";
import {
  isLoopbackHost,
  LOOPBACK_SEND_BUFFER,
  sendBufferBytes,
  tcpConnFd,
  UNIX_SEND_BUFFER,
  unixPeerFds,
  unixSendBufferBytes,
} from "../../adapters/channels/send_buffer.ts";
import type { ConnChannel } from "../../adapters/channels/conn_channel.ts";
import { connectTcp, listenTcp } from "../../adapters/channels/tcp.ts";
import { connectUnix, listenUnix } from "../../adapters/channels/unix.ts";
import type { Channel } from "../../domain/ports.ts";

const linux = Deno.build.os === "linux";

/** Sends 8 MiB from `sender` to `receiver` and checks they arrive whole. */
async function sendsWhole(sender: Channel, receiver: Channel): Promise<void> {
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
}

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
      await sendsWhole(sender, receiver);
    } finally {
      for (const c of [sender, receiver, other, otherEnd]) c.close();
    }
  },
});

Deno.test({
  name:
    "connectUnix: a 4 MiB send buffer on the sockets connected to its path, no other; bytes arrive",
  ignore: !linux,
  fn: async () => {
    const dir = Deno.makeTempDirSync({ prefix: "ferry-sndbuf-" });
    const path = `${dir}/m.sock`;
    const elsewhere = `${dir}/other.sock`;
    const listener = listenUnix(path);
    const otherListener = listenUnix(elsewhere);
    const open: Channel[] = [];
    try {
      // A socket connected to another path, and its buffer before any raise.
      const bystander = await connectUnix(elsewhere);
      open.push(bystander, await otherListener.accept());
      const [bystanderFd] = unixPeerFds(elsewhere);
      assert.ok(bystanderFd !== undefined, "the bystander's socket is found by its peer path");
      const bystanderBefore = unixSendBufferBytes(elsewhere);
      const sender = await connectUnix(path);
      const receiver = await listener.accept();
      const second = await connectUnix(path);
      open.push(sender, receiver, second, await listener.accept());
      // The kernel caps what is asked at net.core.wmem_max, then doubles it.
      const max = Number(Deno.readTextFileSync("/proc/sys/net/core/wmem_max"));
      const want = 2 * Math.min(UNIX_SEND_BUFFER, max);
      // Both connecting ends (the accepted ends have no peer path: they are not among them).
      assert.equal(unixPeerFds(path).length, 2);
      assert.deepEqual(unixSendBufferBytes(path), [want, want]);
      assert.deepEqual(unixSendBufferBytes(elsewhere), bystanderBefore, "another path's socket");
      assert.ok(!unixPeerFds(path).includes(bystanderFd));
      await sendsWhole(sender, receiver);
    } finally {
      for (const c of open) c.close();
      listener.close();
      otherListener.close();
      Deno.removeSync(dir, { recursive: true });
    }
  },
});
