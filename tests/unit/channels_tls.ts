/**
 * TLS migration channels, the data path: mutual-TLS round trips over tcp and unix with
 * checksums, throughput (printed), backpressure from a reader that stops, no-delay for small
 * frames, close and cut semantics, and a listener's close. PKI from tests/helpers/tls_fixture.ts.
 */
import assert from "node:assert/strict";
import net from "node:net";
import type { Channel } from "../../domain/ports.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { ChannelClosedError } from "../../adapters/channels/errors.ts";
import { connectTlsChannel, connectTlsUnixChannel } from "../../adapters/channels/tls.ts";
import { TlsCredsError } from "../../adapters/channels/tls_creds.ts";
import { drainAndHash, pseudoRandomBytes, sha256, within } from "../channels_helpers.ts";
import { CuttingProxy } from "../helpers/cutting_proxy.ts";
import { waitFor } from "../../harness/wait.ts";
import {
  closeAll,
  meet,
  MiB,
  roundTrip,
  tlsConnect,
  tlsListen,
  value,
  withPki,
} from "../helpers/tls_fixture.ts";

Deno.test(
  "tls: mutual TLS 16 MiB round trip with checksum (more than the socket buffers hold)",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    try {
      assert.match(listener.uri, /^tcp:127\.0\.0\.1:\d+$/);
      const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
      try {
        await roundTrip(value(a), value(c), 16 * MiB + 3);
      } finally {
        closeAll(a, c);
      }
    } finally {
      listener.close();
      listener.close(); // safe twice
    }
  }),
);

Deno.test(
  "tls: unix socket round trip; hostname required; socket file removed",
  withPki(async (pki) => {
    const path = `${pki.root}/tls.sock`;
    const listener = await listenChannel(`unix:${path}`, { tls: { creds: pki.server } });
    try {
      assert.equal(listener.uri, `unix:${path}`);
      await assert.rejects(
        connectChannel(listener.uri, { tls: { creds: pki.client } }),
        (e) => e instanceof TlsCredsError && e.message === "No hostname available for TLS",
      );
      const [a, c] = await meet(listener, tlsConnect(listener, pki.client, "localhost"));
      try {
        await roundTrip(value(a), value(c), 8 * MiB + 1);
      } finally {
        closeAll(a, c);
      }
      const direct = await connectTlsUnixChannel(path, pki.clientNoVerify); // no check: no name
      const served = await listener.accept();
      direct.close();
      served.close();
    } finally {
      listener.close();
    }
    await assert.rejects(Deno.lstat(path), Deno.errors.NotFound);
  }),
);

/**
 * Writes up to 48 MiB `from` → `to` while `to` does not read: the writer must stall well
 * before the end (bounded buffering: 4-11 MiB here), and every byte must then arrive intact.
 */
async function assertBackpressure(name: string, from: Channel, to: Channel): Promise<void> {
  const piece = new Uint8Array(MiB);
  const total = 48 * MiB;
  let written = 0;
  const sent: string[] = [];
  const send = (async () => {
    for (let i = 0; written < total; i++) {
      piece.set(pseudoRandomBytes(64, i + 1)); // each piece differs
      sent.push(sha256(piece));
      for (let done = 0; done < MiB;) done += await from.write(piece.subarray(done));
      written += MiB;
    }
    await from.closeWrite();
  })();
  send.catch(() => {}); // awaited below; a failure must not go unhandled meanwhile
  // Until the writer makes no progress for 200 ms (time must pass to show that): without
  // backpressure it would get through all 48 MiB first.
  let stalledAt = -1;
  await waitFor(`${name}: the writer to stall`, async () => {
    const before = written;
    await new Promise((r) => setTimeout(r, 200));
    stalledAt = written;
    return written === before;
  });
  console.log(`${name}: a writer facing a stalled reader stopped after ${stalledAt / MiB} MiB`);
  assert.ok(stalledAt < 32 * MiB, `${name}: writer kept going: ${stalledAt} bytes`);
  const received: string[] = [];
  const buf = new Uint8Array(MiB);
  for (let fill = 0;;) {
    const n = await to.read(buf.subarray(fill));
    if (n === null) break;
    fill += n;
    if (fill === MiB) {
      received.push(sha256(buf));
      fill = 0;
    }
  }
  await send;
  assert.equal(received.length, total / MiB);
  assert.deepEqual(received, sent);
}

Deno.test(
  "tls: a reader that stops reading pushes back on the writer (tcp both ways, unix)",
  withPki(async (pki) => {
    const tcp = await tlsListen(pki.server);
    const unix = await listenChannel(`unix:${pki.root}/bp.sock`, { tls: { creds: pki.server } });
    try {
      const [a, c] = await meet(tcp, tlsConnect(tcp, pki.client));
      try {
        await assertBackpressure("tcp, server reading", value(c), value(a));
      } finally {
        closeAll(a, c);
      }
      const [a2, c2] = await meet(tcp, tlsConnect(tcp, pki.client));
      try {
        await assertBackpressure("tcp, client reading", value(a2), value(c2));
      } finally {
        closeAll(a2, c2);
      }
      const [a3, c3] = await meet(unix, tlsConnect(unix, pki.client, "localhost"));
      try {
        await assertBackpressure("unix, server reading", value(c3), value(a3));
      } finally {
        closeAll(a3, c3);
      }
    } finally {
      tcp.close();
      unix.close();
    }
  }),
);

Deno.test(
  "tls: small frames are not held back (no-delay on both sides)",
  withPki(async (pki) => {
    // How long Nagle's algorithm would hold them is the bench's business; here: both sockets
    // get no-delay (TLS runs on node:net sockets), and 50 small exchanges go through.
    const noDelay: boolean[] = [];
    const setNoDelay = net.Socket.prototype.setNoDelay;
    net.Socket.prototype.setNoDelay = function (this: net.Socket, on?: boolean) {
      noDelay.push(on ?? true);
      return setNoDelay.call(this, on);
    };
    const listener = await tlsListen(pki.server);
    const [a, c] = await meet(listener, tlsConnect(listener, pki.client)).finally(() => {
      net.Socket.prototype.setNoDelay = setNoDelay;
    });
    try {
      assert.deepEqual(noDelay, [true, true], "no-delay on the client's and the server's socket");
      const server = value(a);
      const client = value(c);
      const small = new Uint8Array(10);
      const buf = new Uint8Array(64);
      const readTwenty = async (ch: Channel) => {
        for (let got = 0; got < 20;) got += (await ch.read(buf)) ?? assert.fail("early end");
      };
      const echo = (async () => {
        for (let i = 0; i < 50; i++) {
          await readTwenty(server);
          await server.write(small);
          await server.write(small);
        }
      })();
      for (let i = 0; i < 50; i++) {
        await client.write(small);
        await client.write(small);
        await readTwenty(client);
      }
      await echo;
    } finally {
      closeAll(a, c);
      listener.close();
    }
  }),
);

Deno.test(
  "tls: close() rejects a pending read and every later call",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
    try {
      const client = value(c);
      const pending = client.read(new Uint8Array(10));
      client.close();
      client.close(); // safe twice
      await assert.rejects(pending, ChannelClosedError);
      await assert.rejects(client.read(new Uint8Array(1)), ChannelClosedError);
      await assert.rejects(client.write(new Uint8Array(1)), ChannelClosedError);
      await assert.rejects(client.closeWrite(), ChannelClosedError);
      // The peer sees the connection end.
      const ended = await within(value(a).read(new Uint8Array(10)).catch((e: Error) => e), 30_000);
      assert.ok(ended === null || ended instanceof Error, String(ended));
    } finally {
      closeAll(a, c);
      listener.close();
    }
  }),
);

Deno.test(
  "tls: a connection cut mid-stream ends both sides without hanging",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    const port = Number(listener.uri.split(":").at(-1));
    const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port });
    try {
      const [a, c] = await meet(
        listener,
        () => connectTlsChannel("127.0.0.1", proxy.port, pki.client),
      );
      try {
        const server = value(a);
        const client = value(c);
        const piece = pseudoRandomBytes(MiB, 9);
        const send = (async () => {
          for (;;) {
            await client.write(piece);
          }
        })();
        const received = drainAndHash(server);
        await waitFor("8 MiB through the proxy", () => proxy.bytesUp >= 8 * MiB);
        proxy.cut();
        const sent = await within(send.catch((e: Error) => e), 30_000);
        assert.ok(sent instanceof Error, `writer: ${String(sent)}`);
        const got = await within(received.catch((e: Error) => e), 30_000);
        assert.notEqual(got, "timeout", "reader hung after the cut");
      } finally {
        closeAll(a, c);
      }
    } finally {
      await proxy.close();
      listener.close();
    }
  }),
);

Deno.test(
  "tls: listener close rejects a pending accept, ends handshakes, keeps accepted channels",
  withPki(async (pki) => {
    // A handshake timeout far beyond the wait below: only the close can end the handshake.
    const listener = await tlsListen(pki.server, 120_000);
    const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
    const port = Number(listener.uri.split(":").at(-1));
    const midHandshake = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await new Promise((r) => setTimeout(r, 50)); // let the listener see it (time must pass)
      const pending = listener.accept();
      listener.close();
      await assert.rejects(pending, ChannelClosedError);
      await assert.rejects(listener.accept(), ChannelClosedError);
      // The peer still in its handshake is let go at once, not after the handshake timeout.
      const ended = await within(midHandshake.read(new Uint8Array(8)).catch(() => null), 30_000);
      assert.equal(ended, null);
      // The channel accepted before the close still works.
      await roundTrip(value(a), value(c), 100_000);
    } finally {
      midHandshake.close();
      closeAll(a, c);
    }
  }),
);
