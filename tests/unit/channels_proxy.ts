import assert from "node:assert/strict";
import type { Channel, ChannelListener } from "../../domain/ports.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { drainAndHash, pseudoRandomBytes, readAll, sha256, within } from "../channels_helpers.ts";
import { CuttingProxy } from "../helpers/cutting_proxy.ts";
import { waitFor } from "../../harness/wait.ts";

const MiB = 1024 * 1024;

/** A listener, a proxy in front of it, and one connection through the proxy. */
async function setUp(
  cutAfter?: { up?: number; down?: number },
): Promise<{
  listener: ChannelListener;
  proxy: CuttingProxy;
  server: Channel;
  client: Channel;
  tearDown: () => Promise<void>;
}> {
  const listener = await listenChannel("tcp:127.0.0.1:0");
  const port = Number(listener.uri.split(":").at(-1));
  const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port, cutAfter });
  const [server, client] = await Promise.all([listener.accept(), connectChannel(proxy.uri)]);
  return {
    listener,
    proxy,
    server,
    client,
    tearDown: async () => {
      client.close();
      server.close();
      await proxy.close();
      listener.close();
    },
  };
}

/** Writes all of `data`. */
async function writeAll(channel: Channel, data: Uint8Array): Promise<void> {
  for (let off = 0; off < data.length;) off += await channel.write(data.subarray(off));
}

/** Resolves to the end of `channel` as seen by a reader: "eof", or the error. */
async function readToEnd(channel: Channel): Promise<{ bytes: number; end: "eof" | Error }> {
  const buf = new Uint8Array(64 * 1024);
  let bytes = 0;
  try {
    for (let n; (n = await channel.read(buf)) !== null;) bytes += n;
    return { bytes, end: "eof" };
  } catch (err) {
    return { bytes, end: err as Error };
  }
}

Deno.test("proxy: forwards both ways, counts bytes, passes half-close on", async () => {
  const { proxy, server, client, tearDown } = await setUp();
  try {
    assert.match(proxy.uri, /^tcp:127\.0\.0\.1:\d+$/);
    const data = pseudoRandomBytes(8 * MiB + 5, 21);
    const [, got] = await Promise.all([
      writeAll(client, data).then(() => client.closeWrite()),
      drainAndHash(server),
    ]);
    assert.equal(got.bytes, data.length);
    assert.equal(got.hash, sha256(data));
    const reply = new TextEncoder().encode("back");
    await writeAll(server, reply);
    await server.closeWrite();
    assert.deepEqual(await readAll(client), reply);
    assert.equal(proxy.bytesUp, data.length);
    assert.equal(proxy.bytesDown, reply.length);
    assert.equal(proxy.connections, 1);
    assert.equal(proxy.cuts, 0);
  } finally {
    await tearDown();
  }
});

Deno.test("proxy: cut() ends both sides at once; new connections still work", async () => {
  const { listener, proxy, server, client, tearDown } = await setUp();
  try {
    await writeAll(client, pseudoRandomBytes(MiB, 1));
    await waitFor("1 MiB through the proxy", () => proxy.bytesUp >= MiB);
    const serverEnd = readToEnd(server);
    const clientEnd = readToEnd(client);
    proxy.cut();
    const s = await within(serverEnd, 30_000);
    const c = await within(clientEnd, 30_000);
    assert.notEqual(s, "timeout");
    assert.notEqual(c, "timeout");
    assert.equal(proxy.cuts, 1);
    // A writer on the cut connection fails soon (the proxy's side is gone).
    const failed = await within(
      (async () => {
        for (;;) await client.write(new Uint8Array(64 * 1024));
      })().catch((e: Error) => e),
      30_000,
    );
    assert.ok(failed instanceof Error, String(failed));
    const [server2, client2] = await Promise.all([listener.accept(), connectChannel(proxy.uri)]);
    try {
      await writeAll(client2, new Uint8Array([1, 2, 3]));
      await client2.closeWrite();
      assert.deepEqual(await readAll(server2), new Uint8Array([1, 2, 3]));
    } finally {
      client2.close();
      server2.close();
    }
  } finally {
    await tearDown();
  }
});

Deno.test("proxy: pause() stalls the writer without closing; resume() delivers everything", async () => {
  const { proxy, server, client, tearDown } = await setUp();
  try {
    proxy.pause();
    assert.ok(proxy.paused);
    const data = pseudoRandomBytes(64 * MiB, 4);
    let written = 0;
    const send = (async () => {
      while (written < data.length) written += await client.write(data.subarray(written));
      await client.closeWrite();
    })();
    send.catch(() => {});
    const early = new Uint8Array(16);
    const firstRead = server.read(early);
    await new Promise((r) => setTimeout(r, 400)); // time passes: nothing may get through
    assert.equal(await within(firstRead, 10), "timeout", "bytes got through a paused proxy");
    assert.equal(proxy.bytesUp, 0);
    assert.ok(written < data.length, `writer never stalled (${written} bytes)`);
    proxy.resume();
    const n = await firstRead;
    assert.ok(n !== null && n > 0);
    const rest = await drainAndHash(server);
    await send;
    assert.equal(n + rest.bytes, data.length);
    assert.deepEqual(early.subarray(0, n), data.subarray(0, n));
    assert.equal(rest.hash, sha256(data.subarray(n)));
    assert.equal(proxy.bytesUp, data.length);
  } finally {
    proxy.resume();
    await tearDown();
  }
});

Deno.test("proxy: cutAfter forwards exactly N bytes, then cuts", async () => {
  const n = 3 * MiB + 17;
  const { proxy, server, client, tearDown } = await setUp({ up: n });
  try {
    const data = pseudoRandomBytes(8 * MiB, 8);
    const send = writeAll(client, data).then(() => null, (e: Error) => e);
    const got = await within(readToEnd(server), 30_000);
    assert.notEqual(got, "timeout");
    if (got === "timeout") return;
    assert.equal(got.bytes, n);
    assert.equal(proxy.bytesUp, n);
    assert.equal(proxy.cuts, 1);
    const sendResult = await within(send, 30_000);
    assert.ok(sendResult instanceof Error, `writer: ${String(sendResult)}`);
  } finally {
    await tearDown();
  }
});

Deno.test("proxy: cutAfter down cuts the return direction", async () => {
  const { proxy, server, client, tearDown } = await setUp({ down: 10 });
  try {
    await writeAll(server, new TextEncoder().encode("0123456789abcdef"));
    const got = await within(readToEnd(client), 30_000);
    assert.notEqual(got, "timeout");
    if (got === "timeout") return;
    assert.equal(got.bytes, 10);
    assert.equal(proxy.bytesDown, 10);
    assert.equal(proxy.cuts, 1);
  } finally {
    await tearDown();
  }
});

Deno.test("proxy: close() while paused ends every connection and the listener", async () => {
  const { proxy, client, tearDown } = await setUp();
  try {
    proxy.pause();
    const pending = readToEnd(client);
    await proxy.close();
    assert.notEqual(await within(pending, 30_000), "timeout");
    await assert.rejects(connectChannel(proxy.uri), /Connection refused/);
  } finally {
    await tearDown();
  }
});
