import assert from "node:assert/strict";
import type { Channel, ChannelListener } from "../domain/ports.ts";
import { ChannelConnectError, connectChannel } from "../adapters/channels/connect.ts";
import { listenChannel } from "../adapters/channels/listen.ts";
import { UriError } from "../adapters/channels/uri.ts";
import { ChannelClosedError } from "../adapters/channels/errors.ts";
import {
  connectTlsChannel,
  connectTlsUnixChannel,
  listenTlsChannel,
  TlsHandshakeError,
} from "../adapters/channels/tls.ts";
import {
  loadTlsCreds,
  parseTlsObject,
  type TlsCreds,
  TlsCredsError,
  TlsCredsRegistry,
} from "../adapters/channels/tls_creds.ts";
import { drainAndHash, pseudoRandomBytes, readAll, sha256, within } from "./channels_helpers.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { credsDir, issue, makeCa } from "./helpers/pki.ts";

const MiB = 1024 * 1024;

// ---------------------------------------------------------------------------------------
// A throw-away PKI made with openssl: CA "A" (trusted) and CA "B" (untrusted).

interface Pki {
  root: string;
  /** Server creds (CA A, cert for 127.0.0.1/localhost), verify-peer on and off. */
  server: TlsCreds;
  serverNoVerify: TlsCreds;
  /** Server whose certificate names only "ferry-dst". */
  serverNamed: TlsCreds;
  /** Server whose certificate CA B signed. */
  serverUntrusted: TlsCreds;
  client: TlsCreds;
  clientUntrusted: TlsCreds;
  clientNoCert: TlsCreds;
  clientNoVerify: TlsCreds;
}

async function makePki(): Promise<Pki> {
  const root = await Deno.makeTempDir({ prefix: "ferry-tls-" });
  const work = `${root}/work`;
  await Deno.mkdir(work);
  await makeCa(work, "caA");
  await makeCa(work, "caB");
  const local = "IP:127.0.0.1,DNS:localhost";
  await issue(work, "caA", "srv", "server", local);
  await issue(work, "caA", "cli", "client", local);
  await issue(work, "caA", "named", "ferry-dst", "DNS:ferry-dst");
  await issue(work, "caB", "srvB", "server", local);
  await issue(work, "caB", "cliB", "client", local);
  const load = async (name: string, ca: string, leaf: [string, string] | undefined, obj: string) =>
    await loadTlsCreds(
      parseTlsObject(
        `tls-creds-x509,id=${name},dir=${await credsDir(root, name, ca, leaf)},${obj}`,
      ),
    );
  return {
    root,
    server: await load("server", "caA", ["srv", "server"], "endpoint=server"),
    serverNoVerify: await load(
      "serverNoVerify",
      "caA",
      ["srv", "server"],
      "endpoint=server,verify-peer=off",
    ),
    serverNamed: await load("serverNamed", "caA", ["named", "server"], "endpoint=server"),
    serverUntrusted: await load("serverUntrusted", "caA", ["srvB", "server"], "endpoint=server"),
    client: await load("client", "caA", ["cli", "client"], "endpoint=client"),
    clientUntrusted: await load("clientUntrusted", "caA", ["cliB", "client"], "endpoint=client"),
    clientNoCert: await load("clientNoCert", "caA", undefined, "endpoint=client"),
    clientNoVerify: await load(
      "clientNoVerify",
      "caA",
      ["cli", "client"],
      "endpoint=client,verify-peer=off",
    ),
  };
}

/** Runs `fn` with a fresh PKI, removing it afterwards. */
function withPki(fn: (pki: Pki) => Promise<void>): () => Promise<void> {
  return async () => {
    const pki = await makePki();
    try {
      await fn(pki);
    } finally {
      await Deno.remove(pki.root, { recursive: true });
    }
  };
}

// ---------------------------------------------------------------------------------------
// Helpers

/** Accepts one peer while `connect` runs; both outcomes, settled. */
async function meet(
  listener: ChannelListener,
  connect: () => Promise<Channel>,
): Promise<[PromiseSettledResult<Channel>, PromiseSettledResult<Channel>]> {
  const [accepted, connected] = await Promise.allSettled([listener.accept(), connect()]);
  return [accepted, connected];
}

function closeAll(...results: PromiseSettledResult<Channel>[]): void {
  for (const r of results) if (r.status === "fulfilled") r.value.close();
}

function value<T>(r: PromiseSettledResult<T>): T {
  if (r.status === "rejected") throw r.reason;
  return r.value;
}

function reason(r: PromiseSettledResult<unknown>): Error {
  assert.equal(r.status, "rejected", "expected a failure");
  return (r as PromiseRejectedResult).reason;
}

/**
 * Sends `total` bytes client → server in 1 MiB writes from one SharedArrayBuffer view that is
 * changed as soon as each write resolves (so a write that still used the caller's buffer, a
 * lost or a repeated piece all change the hash), reads them with an odd-sized buffer, then
 * checks the return direction after the half-close. Resolves to the one-way seconds.
 */
async function roundTrip(server: Channel, client: Channel, total: number): Promise<number> {
  const buf = new Uint8Array(new SharedArrayBuffer(MiB));
  buf.set(pseudoRandomBytes(MiB, 11));
  const t0 = performance.now();
  const send = (async () => {
    const expected: Uint8Array[] = [];
    for (let off = 0, i = 0; off < total; off += MiB, i++) {
      buf[0] = i & 0xff;
      buf[MiB - 1] = (i >> 8) & 0xff;
      const piece = buf.subarray(0, Math.min(MiB, total - off));
      expected.push(piece.slice());
      for (let done = 0; done < piece.length;) done += await client.write(piece.subarray(done));
      buf[0] ^= 0x5a; // the write resolved: the buffer is ours again
    }
    await client.closeWrite();
    return sha256(...expected);
  })();
  const [sentHash, got] = await Promise.all([send, drainAndHash(server, 100_003)]);
  const seconds = (performance.now() - t0) / 1000;
  assert.equal(got.bytes, total);
  assert.equal(got.hash, sentHash);
  const reply = new TextEncoder().encode("return path ok");
  assert.equal(await server.write(reply), reply.length);
  await server.closeWrite();
  assert.deepEqual(await readAll(client), reply);
  return seconds;
}

async function tlsListen(creds: TlsCreds, handshakeTimeoutMs?: number) {
  return await listenChannel("tcp:127.0.0.1:0", { tls: { creds, handshakeTimeoutMs } });
}

function tlsConnect(listener: ChannelListener, creds: TlsCreds, hostname?: string) {
  return () => connectChannel(listener.uri, { tls: { creds, hostname } });
}

/** Asserts a good client still gets through `listener` (with a small round trip). */
async function assertStillAccepting(listener: ChannelListener, pki: Pki): Promise<void> {
  const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
  try {
    await roundTrip(value(a), value(c), 64 * 1024 + 3);
  } finally {
    closeAll(a, c);
  }
}

// ---------------------------------------------------------------------------------------
// Data path

Deno.test(
  "tls: mutual TLS 64 MiB round trip with checksum",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    try {
      assert.match(listener.uri, /^tcp:127\.0\.0\.1:\d+$/);
      const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
      try {
        await roundTrip(value(a), value(c), 64 * MiB);
      } finally {
        closeAll(a, c);
      }
    } finally {
      listener.close();
      listener.close(); // safe twice
    }
  }),
);

/** Seconds to move `total` bytes a → b in 1 MiB writes (reader counts only). */
async function bulkSeconds(from: Channel, to: Channel, total: number): Promise<number> {
  const piece = new Uint8Array(new SharedArrayBuffer(MiB));
  piece.set(pseudoRandomBytes(MiB, 3));
  const t0 = performance.now();
  const send = (async () => {
    for (let off = 0; off < total; off += MiB) {
      for (let done = 0; done < MiB;) done += await from.write(piece.subarray(done));
    }
    await from.closeWrite();
  })();
  const buf = new Uint8Array(MiB);
  let got = 0;
  for (let n; (n = await to.read(buf)) !== null;) got += n;
  await send;
  assert.equal(got, total);
  return (performance.now() - t0) / 1000;
}

Deno.test(
  "tls: throughput with 1 MiB writes, mutual TLS over tcp and unix, plain tcp for reference (printed)",
  withPki(async (pki) => {
    const total = 512 * MiB;
    const rows: string[] = [];
    const cases: [string, string, Parameters<typeof listenChannel>[1], string | undefined][] = [
      ["plain tcp", "tcp:127.0.0.1:0", {}, undefined],
      ["mutual TLS, tcp", "tcp:127.0.0.1:0", { tls: { creds: pki.server } }, undefined],
      [
        "mutual TLS, unix",
        `unix:${pki.root}/bulk.sock`,
        { tls: { creds: pki.server } },
        "localhost",
      ],
    ];
    for (const [name, uri, opts, hostname] of cases) {
      const listener = await listenChannel(uri, opts);
      try {
        const tls = opts?.tls ? { tls: { creds: pki.client, hostname } } : {};
        const [a, c] = await meet(listener, () => connectChannel(listener.uri, tls));
        try {
          const seconds = await bulkSeconds(value(c), value(a), total);
          rows.push(`${name}: ${(total / seconds / 1e9).toFixed(2)} GB/s`);
        } finally {
          closeAll(a, c);
        }
      } finally {
        listener.close();
      }
    }
    console.log(`${total / MiB} MiB one way: ${rows.join("; ")}`);
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
 * Writes up to 256 MiB `from` → `to` while `to` does not read for 400 ms: the writer must
 * stall well before the end (bounded buffering), and every byte must then arrive intact.
 */
async function assertBackpressure(name: string, from: Channel, to: Channel): Promise<void> {
  const piece = new Uint8Array(MiB);
  const total = 256 * MiB;
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
  await new Promise((r) => setTimeout(r, 400));
  const stalledAt = written;
  console.log(`${name}: a writer facing a stalled reader stopped after ${stalledAt / MiB} MiB`);
  assert.ok(stalledAt < 64 * MiB, `${name}: writer kept going: ${stalledAt} bytes`);
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
    const listener = await tlsListen(pki.server);
    const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
    try {
      const server = value(a);
      const client = value(c);
      const small = new Uint8Array(10);
      const buf = new Uint8Array(64);
      const readTwenty = async (ch: Channel) => {
        for (let got = 0; got < 20;) got += (await ch.read(buf)) ?? assert.fail("early end");
      };
      const t0 = performance.now();
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
      const ms = performance.now() - t0;
      // With Nagle's algorithm and delayed ACKs each exchange waits ~40-90 ms (4.4 s here).
      assert.ok(ms < 1000, `50 exchanges of two 10-byte frames took ${ms.toFixed(0)} ms`);
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
      const ended = await within(value(a).read(new Uint8Array(10)).catch((e: Error) => e), 5000);
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
        while (proxy.bytesUp < 8 * MiB) await new Promise((r) => setTimeout(r, 10));
        proxy.cut();
        const sent = await within(send.catch((e: Error) => e), 5000);
        assert.ok(sent instanceof Error, `writer: ${String(sent)}`);
        const got = await within(received.catch((e: Error) => e), 5000);
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
    const listener = await tlsListen(pki.server);
    const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
    const port = Number(listener.uri.split(":").at(-1));
    const midHandshake = await Deno.connect({ hostname: "127.0.0.1", port });
    try {
      await new Promise((r) => setTimeout(r, 50)); // let the listener see it
      const pending = listener.accept();
      listener.close();
      await assert.rejects(pending, ChannelClosedError);
      await assert.rejects(listener.accept(), ChannelClosedError);
      // The peer still in its handshake is let go at once, not after the handshake timeout.
      const ended = await within(midHandshake.read(new Uint8Array(8)).catch(() => null), 2000);
      assert.equal(ended, null);
      // The channel accepted before the close still works.
      await roundTrip(value(a), value(c), 100_000);
    } finally {
      midHandshake.close();
      closeAll(a, c);
    }
  }),
);

// ---------------------------------------------------------------------------------------
// Peers that must be refused

Deno.test(
  "tls: client certificate from an untrusted CA: refused with verify-peer=on, accepted with off",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    try {
      const [a, c] = await meet(listener, tlsConnect(listener, pki.clientUntrusted));
      closeAll(a, c);
      assert.ok(reason(a) instanceof TlsHandshakeError);
      assert.match(
        reason(a).message,
        /^TLS handshake failed: certificate rejected: unable to verify/,
      );
      assert.ok(reason(c) instanceof ChannelConnectError);
      assert.match(
        reason(c).message,
        /^Failed to connect to 127\.0\.0\.1:\d+: TLS handshake failed: certificate rejected by the server: unable to verify/,
      );
      await assertStillAccepting(listener, pki);
    } finally {
      listener.close();
    }
    const lax = await tlsListen(pki.serverNoVerify);
    try {
      const [a, c] = await meet(lax, tlsConnect(lax, pki.clientUntrusted));
      try {
        await roundTrip(value(a), value(c), 1000);
      } finally {
        closeAll(a, c);
      }
    } finally {
      lax.close();
    }
  }),
);

Deno.test(
  "tls: client without a certificate: refused with verify-peer=on, accepted with off",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server);
    try {
      const [a, c] = await meet(listener, tlsConnect(listener, pki.clientNoCert));
      closeAll(a, c);
      assert.equal(
        reason(a).message,
        "TLS handshake failed: certificate rejected: the client sent no certificate",
      );
      assert.match(
        reason(c).message,
        /certificate rejected by the server: the client sent no certificate$/,
      );
      await assertStillAccepting(listener, pki);
    } finally {
      listener.close();
    }
    const lax = await tlsListen(pki.serverNoVerify);
    try {
      const [a, c] = await meet(lax, tlsConnect(lax, pki.clientNoCert));
      try {
        await roundTrip(value(a), value(c), 1000);
      } finally {
        closeAll(a, c);
      }
    } finally {
      lax.close();
    }
  }),
);

Deno.test(
  "tls: server certificate from an untrusted CA: refused by the client unless verify-peer=off",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.serverUntrusted);
    try {
      const [a, c] = await meet(listener, tlsConnect(listener, pki.client));
      closeAll(a, c);
      assert.ok(reason(c) instanceof ChannelConnectError);
      assert.ok((reason(c) as Error).cause instanceof TlsHandshakeError);
      assert.match(reason(c).message, /: TLS handshake failed: certificate rejected: /);
      assert.ok(reason(a) instanceof TlsHandshakeError, String(reason(a)));
      // The same client with verify-peer=off goes through (the server trusts its certificate).
      const [a2, c2] = await meet(listener, tlsConnect(listener, pki.clientNoVerify));
      try {
        await roundTrip(value(a2), value(c2), 1000);
      } finally {
        closeAll(a2, c2);
      }
    } finally {
      listener.close();
    }
  }),
);

Deno.test(
  "tls: tls-hostname overrides the name checked",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.serverNamed);
    try {
      const [a, c] = await meet(listener, tlsConnect(listener, pki.client, "ferry-dst"));
      try {
        await roundTrip(value(a), value(c), 4 * MiB);
      } finally {
        closeAll(a, c);
      }
      for (const hostname of [undefined, "", "other-host"]) {
        const [a2, c2] = await meet(listener, tlsConnect(listener, pki.client, hostname));
        closeAll(a2, c2);
        assert.match(
          reason(c2).message,
          /TLS handshake failed: certificate rejected: Hostname\/IP does not match certificate's altnames/,
          `hostname ${hostname}`,
        );
        assert.ok(reason(a2) instanceof TlsHandshakeError);
        assert.match(reason(a2).message, /the client closed the connection/);
      }
    } finally {
      listener.close();
    }
  }),
);

Deno.test(
  "tls: plain TCP peers fail their accept; the listener keeps accepting",
  withPki(async (pki) => {
    const listener = await tlsListen(pki.server, 300);
    const port = Number(listener.uri.split(":").at(-1));
    try {
      // A plain-TCP source that starts sending its stream at once.
      const talker = await Deno.connect({ hostname: "127.0.0.1", port });
      const accepted = listener.accept();
      await talker.write(new TextEncoder().encode("QEVM\x00\x00\x00\x03 plain stream bytes"));
      const err = await accepted.then(() => null, (e: Error) => e);
      assert.ok(err instanceof TlsHandshakeError, String(err));
      assert.match(err.message, /the peer did not start a TLS session/);
      assert.notEqual(await within(readUntilEnd(talker), 5000), "timeout");
      talker.close();
      // A plain-TCP peer that says nothing: the handshake timeout ends it.
      const silent = await Deno.connect({ hostname: "127.0.0.1", port });
      const t0 = performance.now();
      const err2 = await listener.accept().then(() => null, (e: Error) => e);
      assert.ok(err2 instanceof TlsHandshakeError, String(err2));
      assert.match(err2.message, /timed out/);
      assert.ok(performance.now() - t0 < 3000);
      assert.notEqual(await within(readUntilEnd(silent), 5000), "timeout");
      silent.close();
      await assertStillAccepting(listener, pki);
    } finally {
      listener.close();
    }
  }),
);

Deno.test(
  "tls: a TLS client refuses a plain TCP listener within its handshake timeout",
  withPki(async (pki) => {
    const plain = await listenChannel("tcp:127.0.0.1:0");
    try {
      const t0 = performance.now();
      const [a, c] = await meet(
        plain,
        () => connectChannel(plain.uri, { tls: { creds: pki.client, handshakeTimeoutMs: 300 } }),
      );
      closeAll(a, c);
      assert.match(reason(c).message, /TLS handshake failed: no answer within 300 ms/);
      assert.ok(performance.now() - t0 < 3000);
      // A plain server that talks first.
      const [a2, c2] = await Promise.allSettled([
        plain.accept().then(async (ch) => {
          await ch.write(new TextEncoder().encode("QEVM\x00\x00\x00\x03 plain stream bytes\n"));
          return ch;
        }),
        connectChannel(plain.uri, { tls: { creds: pki.client, handshakeTimeoutMs: 2000 } }),
      ]);
      closeAll(a2, c2);
      assert.match(reason(c2).message, /TLS handshake failed: /);
    } finally {
      plain.close();
    }
  }),
);

/** Reads a Deno.Conn until end of stream or an error (a refused peer's view). */
async function readUntilEnd(conn: Deno.Conn): Promise<void> {
  const buf = new Uint8Array(4096);
  try {
    while (await conn.read(buf) !== null) { /* discard */ }
  } catch {
    // Reset by the listener: also an end.
  }
}

// ---------------------------------------------------------------------------------------
// Credentials objects

Deno.test("tls creds: parseTlsObject accepts QEMU's syntax and names every mistake", () => {
  assert.deepEqual(
    parseTlsObject("tls-creds-x509,id=tls0,dir=/pki,endpoint=server,verify-peer=off"),
    {
      id: "tls0",
      dir: "/pki",
      endpoint: "server",
      verifyPeer: false,
    },
  );
  assert.deepEqual(parseTlsObject("qom-type=tls-creds-x509,id=c,dir=/a,,b"), {
    id: "c",
    dir: "/a,b",
    endpoint: "client",
    verifyPeer: true,
  });
  assert.equal(parseTlsObject("tls-creds-x509,id=c,dir=/d,verify-peer=yes").verifyPeer, true);
  const cases: [string, string][] = [
    ["tls-creds-x509,dir=/d", "Parameter 'id' is missing"],
    ["tls-creds-x509,id=,dir=/d", "Parameter 'id' is missing"],
    ["tls-creds-x509,id=9x,dir=/d", "Parameter 'id' expects an identifier, got '9x'"],
    ["tls-creds-x509,id=a", "Parameter 'dir' is missing"],
    [
      "tls-creds-x509,id=a,dir=/d,endpoint=both",
      "Parameter 'endpoint' does not accept value 'both' (expected server or client)",
    ],
    [
      "tls-creds-x509,id=a,dir=/d,verify-peer=maybe",
      "Parameter 'verify-peer' expects 'on' or 'off', got 'maybe'",
    ],
    ["tls-creds-x509,id=a,dir=/d,priority=NORMAL", "Property 'tls-creds-x509.priority' not found"],
    ["tls-creds-x509,id=a,dir=/d,id=b", "Parameter 'id' is given more than once"],
    ["tls-creds-x509,id=a,dir", "Expected '=' after parameter 'dir'"],
    [
      "tls-creds-psk,id=a,dir=/d",
      "Invalid object type 'tls-creds-psk' (only tls-creds-x509 is supported)",
    ],
    ["id=a,dir=/d", "object type missing in 'id=a,dir=/d' (expected tls-creds-x509,...)"],
  ];
  for (const [spec, message] of cases) {
    assert.throws(
      () => parseTlsObject(spec),
      (e) => e instanceof TlsCredsError && e.message === message,
      spec,
    );
  }
});

Deno.test(
  "tls creds: loading names the missing or broken file",
  withPki(async (pki) => {
    const dir = `${pki.root}/partial`;
    await Deno.mkdir(dir);
    const server = parseTlsObject(`tls-creds-x509,id=s,dir=${dir},endpoint=server`);
    const client = parseTlsObject(`tls-creds-x509,id=c,dir=${dir}/,endpoint=client`);
    const expectError = async (spec: typeof server, message: string) =>
      await assert.rejects(
        loadTlsCreds(spec),
        (e) => e instanceof TlsCredsError && e.message === message,
      );
    const enoent = (file: string) =>
      `Unable to access credentials ${dir}/${file}: No such file or directory`;
    await expectError(server, enoent("ca-cert.pem"));
    await expectError(client, enoent("ca-cert.pem"));
    await Deno.copyFile(`${pki.root}/server/ca-cert.pem`, `${dir}/ca-cert.pem`);
    await expectError(server, enoent("server-cert.pem"));
    const bare = await loadTlsCreds(client); // a client needs no certificate of its own
    assert.equal(bare.cert, undefined);
    assert.equal(bare.key, undefined);
    assert.match(bare.caCert, /BEGIN CERTIFICATE/);
    await Deno.copyFile(`${pki.root}/server/server-cert.pem`, `${dir}/server-cert.pem`);
    await expectError(server, enoent("server-key.pem"));
    await Deno.copyFile(`${pki.root}/client/client-key.pem`, `${dir}/server-key.pem`);
    await expectError(
      server,
      `Private key ${dir}/server-key.pem does not match certificate ${dir}/server-cert.pem`,
    );
    await Deno.copyFile(`${pki.root}/client/client-key.pem`, `${dir}/client-key.pem`);
    await expectError(client, enoent("client-cert.pem")); // a key alone is not enough
    await Deno.writeTextFile(`${dir}/client-cert.pem`, "not a certificate\n");
    await expectError(
      client,
      `Unable to import certificate ${dir}/client-cert.pem: no PEM certificate in it`,
    );
    await Deno.writeTextFile(
      `${dir}/server-key.pem`,
      "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
    );
    await assert.rejects(
      loadTlsCreds(server),
      /^TlsCredsError: Unable to import private key .*server-key\.pem: /,
    );
    const loaded = await loadTlsCreds(
      parseTlsObject(`tls-creds-x509,id=ok,dir=${pki.root}/server,endpoint=server`),
    );
    assert.equal(loaded.endpoint, "server");
    assert.match(loaded.cert ?? "", /BEGIN CERTIFICATE/);
    assert.match(loaded.key ?? "", /PRIVATE KEY/);
  }),
);

Deno.test(
  "tls creds: registry by id; wrong endpoint and non-socket URIs refused",
  withPki(async (pki) => {
    const registry = await TlsCredsRegistry.fromObjects([
      `tls-creds-x509,id=srv,dir=${pki.root}/server,endpoint=server`,
      `tls-creds-x509,id=cli,dir=${pki.root}/client,endpoint=client,verify-peer=on`,
    ]);
    assert.deepEqual(registry.ids(), ["srv", "cli"]);
    assert.ok(registry.has("cli"));
    assert.equal(registry.get("cli").endpoint, "client");
    assert.throws(
      () => registry.get("nope"),
      (e) => e instanceof TlsCredsError && e.message === "No TLS credentials with id 'nope'",
    );
    assert.throws(() => registry.add(registry.get("srv")), /duplicate object id 'srv'/);
    await assert.rejects(
      TlsCredsRegistry.fromObjects([`tls-creds-x509,id=x,dir=${pki.root}/missing,endpoint=server`]),
      /Unable to access credentials .*missing\/ca-cert\.pem: No such file or directory/,
    );
    await assert.rejects(
      listenChannel("tcp:127.0.0.1:0", { tls: { creds: registry.get("cli") } }),
      (e) =>
        e instanceof TlsCredsError &&
        e.message === "Expecting TLS credentials with a server endpoint",
    );
    await assert.rejects(
      connectChannel("tcp:127.0.0.1:9", { tls: { creds: registry.get("srv") } }),
      (e) =>
        e instanceof TlsCredsError &&
        e.message === "Expecting TLS credentials with a client endpoint",
    );
    for (const uri of ["exec:cat", `file:${pki.root}/f`]) {
      await assert.rejects(
        connectChannel(uri, { tls: { creds: pki.client } }),
        (e) =>
          e instanceof UriError &&
          /^TLS is only supported on tcp: and unix: channels/.test(e.message),
      );
      await assert.rejects(
        listenChannel(uri, { tls: { creds: pki.server } }),
        (e) =>
          e instanceof UriError &&
          /^TLS is only supported on tcp: and unix: channels/.test(e.message),
      );
    }
    // Connect and listen failures keep their usual, QEMU-like texts.
    const listener = await listenTlsChannel("127.0.0.1", 0, pki.server);
    const port = Number(listener.uri.split(":").at(-1));
    try {
      await assert.rejects(
        listenChannel(`tcp:127.0.0.1:${port}`, { tls: { creds: pki.server } }),
        (e) =>
          e instanceof ChannelConnectError &&
          e.message === `Failed to listen on 127.0.0.1:${port}: Address already in use`,
      );
    } finally {
      listener.close();
    }
    await assert.rejects(
      connectChannel(`tcp:127.0.0.1:${port}`, { tls: { creds: pki.client } }),
      (e) =>
        e instanceof ChannelConnectError &&
        e.message === `Failed to connect to 127.0.0.1:${port}: Connection refused`,
    );
  }),
);
