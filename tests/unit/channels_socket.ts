import assert from "node:assert/strict";
import type { ChannelListener } from "../../domain/ports.ts";
import { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { ChannelConnectError, connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { drainAndHash, pseudoRandomBytes, readAll, sha256 } from "../channels_helpers.ts";

const MiB = 1024 * 1024;

/** Sends `total` bytes (1 MiB pieces of `data`, varied per piece) from connector to acceptor. */
async function roundTrip(listener: ChannelListener, total: number): Promise<void> {
  const data = pseudoRandomBytes(MiB, 7);
  const [server, client] = await Promise.all([listener.accept(), connectChannel(listener.uri)]);
  try {
    const send = (async () => {
      const writer = new ChannelWriter(client);
      const expected: Uint8Array[] = [];
      for (let off = 0, i = 0; off < total; off += MiB, i++) {
        data[0] = i & 0xff; // each piece differs, so a lost or repeated piece changes the hash
        const piece = data.subarray(0, Math.min(MiB, total - off));
        expected.push(piece.slice());
        await writer.write(piece);
      }
      await client.closeWrite();
      assert.equal(writer.bytesWritten, total);
      return sha256(...expected);
    })();
    const [sentHash, got] = await Promise.all([send, drainAndHash(server)]);
    assert.equal(got.bytes, total);
    assert.equal(got.hash, sentHash);
    // The other direction still works after the half-close.
    const reply = new TextEncoder().encode("return path ok");
    await new ChannelWriter(server).write(reply);
    await server.closeWrite();
    assert.deepEqual(await readAll(client), reply);
  } finally {
    client.close();
    server.close();
  }
}

Deno.test("tcp: 16 MiB round trip (more than the socket buffers hold); port 0 listener reports the bound port", async () => {
  const listener = await listenChannel("tcp:127.0.0.1:0");
  try {
    const m = /^tcp:127\.0\.0\.1:(\d+)$/.exec(listener.uri);
    assert.ok(m, listener.uri);
    assert.notEqual(Number(m[1]), 0);
    await roundTrip(listener, 16 * MiB + 3);
  } finally {
    listener.close();
    listener.close(); // safe twice
  }
});

/** Whether this host has an IPv6 loopback to test with. */
function hasIpv6Loopback(): boolean {
  try {
    Deno.listen({ hostname: "::1", port: 0 }).close();
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name: "tcp: IPv6 loopback listener uri is bracketed and connectable",
  ignore: !hasIpv6Loopback(),
  async fn() {
    const listener = await listenChannel("tcp:[::1]:0");
    try {
      assert.match(listener.uri, /^tcp:\[::1\]:\d+$/);
      await roundTrip(listener, 3 * MiB + 5);
    } finally {
      listener.close();
    }
  },
});

Deno.test("unix: 16 MiB round trip (more than the socket buffers hold); stale socket replaced; file removed on close", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/mig.sock`;
  try {
    // A socket file left behind by a process that died without cleaning up.
    const stale = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `Deno.listen({ transport: "unix", path: ${JSON.stringify(path)} }); Deno.exit(0)`,
      ],
    }).output();
    assert.ok(stale.success);
    assert.ok(Deno.lstatSync(path).isSocket);
    const listener = await listenChannel(`unix:${path}`);
    try {
      assert.equal(listener.uri, `unix:${path}`);
      await roundTrip(listener, 16 * MiB + 3);
    } finally {
      listener.close();
    }
    assert.throws(() => Deno.lstatSync(path), Deno.errors.NotFound);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("unix: a regular file at the path is refused, not deleted", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/not-a-socket`;
  try {
    await Deno.writeTextFile(path, "keep me");
    await assert.rejects(
      listenChannel(`unix:${path}`),
      (err: unknown) =>
        err instanceof ChannelConnectError &&
        err.message === `Failed to listen on ${path}: '${path}' exists and is not a socket`,
    );
    assert.equal(await Deno.readTextFile(path), "keep me");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("connect errors are QEMU-like", async () => {
  const listener = await listenChannel("tcp:127.0.0.1:0");
  const port = Number(listener.uri.split(":").pop());
  listener.close();
  await assert.rejects(
    connectChannel(`tcp:127.0.0.1:${port}`),
    (err: unknown) =>
      err instanceof ChannelConnectError &&
      err.message === `Failed to connect to 127.0.0.1:${port}: Connection refused`,
  );
  const dir = await Deno.makeTempDir();
  try {
    await assert.rejects(
      connectChannel(`unix:${dir}/nobody.sock`),
      (err: unknown) =>
        err instanceof ChannelConnectError &&
        err.message === `Failed to connect to ${dir}/nobody.sock: No such file or directory`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  const busy = await listenChannel("tcp:127.0.0.1:0");
  try {
    await assert.rejects(
      listenChannel(busy.uri),
      (err: unknown) =>
        err instanceof ChannelConnectError &&
        err.message.startsWith(`Failed to listen on ${busy.uri.slice(4)}: `) &&
        /in use/i.test(err.message),
    );
  } finally {
    busy.close();
  }
});

Deno.test("listener: accept rejects once closed, also when already waiting", async () => {
  const listener = await listenChannel("tcp:127.0.0.1:0");
  const pending = listener.accept();
  listener.close();
  await assert.rejects(pending);
  await assert.rejects(listener.accept());
});

Deno.test("channel: close rejects a pending read; close twice is safe", async () => {
  const listener = await listenChannel("tcp:127.0.0.1:0");
  const [server, client] = await Promise.all([listener.accept(), connectChannel(listener.uri)]);
  try {
    const read = server.read(new Uint8Array(16));
    server.close();
    await assert.rejects(read);
    server.close();
    assert.equal(await client.read(new Uint8Array(16)), null); // the peer sees end of stream
    await assert.rejects(server.write(new Uint8Array(1)));
  } finally {
    client.close();
    listener.close();
  }
});

/** Runs channels_worker_fixture.ts: it writes `bytes` bytes to `uri`; resolves to its report. */
async function writeFromWorker(uri: string, bytes: number, seed: number): Promise<unknown> {
  const worker = new Worker(new URL("../channels_worker_fixture.ts", import.meta.url), {
    type: "module",
  });
  try {
    const reply = new Promise((resolve) => {
      worker.onmessage = (e) => resolve(e.data);
    });
    worker.postMessage({ uri, bytes, seed });
    return await reply;
  } finally {
    worker.terminate();
  }
}

Deno.test("tcp and exec from inside a Worker (no main-thread-only APIs)", async () => {
  const bytes = 8 * MiB + 17;
  const listener = await listenChannel("tcp:127.0.0.1:0");
  try {
    const sending = writeFromWorker(listener.uri, bytes, 21);
    const server = await listener.accept();
    try {
      const got = await drainAndHash(server);
      assert.deepEqual(await sending, { ok: true, written: bytes });
      assert.equal(got.bytes, bytes);
      assert.equal(got.hash, sha256(pseudoRandomBytes(bytes, 21)));
    } finally {
      server.close();
    }
  } finally {
    listener.close();
  }
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/from-worker.bin`;
    assert.deepEqual(await writeFromWorker(`exec:cat > ${file}`, bytes, 22), {
      ok: true,
      written: bytes,
    });
    assert.equal(sha256(await Deno.readFile(file)), sha256(pseudoRandomBytes(bytes, 22)));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
