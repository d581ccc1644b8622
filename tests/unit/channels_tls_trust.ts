/**
 * TLS migration channels, trust: peers that must be refused (untrusted CAs, no client
 * certificate, a wrong name, plain TCP either way) with the listener accepting on, and the
 * credentials objects (`--object tls-creds-x509` parsing, loading, the registry).
 */
import assert from "node:assert/strict";
import { ChannelConnectError, connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { UriError } from "../../adapters/channels/uri.ts";
import { listenTlsChannel, TlsHandshakeError } from "../../adapters/channels/tls.ts";
import {
  loadTlsCreds,
  parseTlsObject,
  type TlsCreds,
  TlsCredsError,
  TlsCredsRegistry,
} from "../../adapters/channels/tls_creds.ts";
import { within } from "../channels_helpers.ts";
import {
  assertRoundTrip,
  assertStillAccepting,
  closeAll,
  meet,
  MiB,
  type Pki,
  reason,
  tlsConnect,
  tlsListen,
  withPki,
} from "../helpers/tls_fixture.ts";

// Peers that must be refused

/**
 * Connects `client` to a verifying server (verify-peer=on), lets `check` look at both ends'
 * failures, checks the listener still accepts; then `client` migrates fine to a server
 * with verify-peer=off.
 */
async function refusedUnlessLax(
  pki: Pki,
  client: TlsCreds,
  check: (server: Error, client: Error) => void,
): Promise<void> {
  const listener = await tlsListen(pki.server);
  try {
    const [a, c] = await meet(listener, tlsConnect(listener, client));
    closeAll(a, c);
    check(reason(a), reason(c));
    await assertStillAccepting(listener, pki);
  } finally {
    listener.close();
  }
  const lax = await tlsListen(pki.serverNoVerify);
  try {
    await assertRoundTrip(lax, client);
  } finally {
    lax.close();
  }
}

Deno.test(
  "tls: client certificate from an untrusted CA: refused with verify-peer=on, accepted with off",
  withPki((pki) =>
    refusedUnlessLax(pki, pki.clientUntrusted, (server, client) => {
      assert.ok(server instanceof TlsHandshakeError);
      assert.match(server.message, /^TLS handshake failed: certificate rejected: unable to verify/);
      assert.ok(client instanceof ChannelConnectError);
      assert.match(
        client.message,
        /^Failed to connect to 127\.0\.0\.1:\d+: TLS handshake failed: certificate rejected by the server: unable to verify/,
      );
    })
  ),
);

Deno.test(
  "tls: client without a certificate: refused with verify-peer=on, accepted with off",
  withPki((pki) =>
    refusedUnlessLax(pki, pki.clientNoCert, (server, client) => {
      assert.equal(
        server.message,
        "TLS handshake failed: certificate rejected: the client sent no certificate",
      );
      assert.match(
        client.message,
        /certificate rejected by the server: the client sent no certificate$/,
      );
    })
  ),
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
      await assertRoundTrip(listener, pki.clientNoVerify);
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
      await assertRoundTrip(listener, pki.client, 4 * MiB, "ferry-dst");
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
      assert.notEqual(await within(readUntilEnd(talker), 30_000), "timeout");
      talker.close();
      // A plain-TCP peer that says nothing: the handshake timeout ends it.
      const silent = await Deno.connect({ hostname: "127.0.0.1", port });
      const err2 = await listener.accept().then(() => null, (e: Error) => e);
      assert.ok(err2 instanceof TlsHandshakeError, String(err2));
      assert.match(err2.message, /timed out/, "ended by the handshake timeout");
      assert.notEqual(await within(readUntilEnd(silent), 30_000), "timeout");
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
      const [a, c] = await meet(
        plain,
        () => connectChannel(plain.uri, { tls: { creds: pki.client, handshakeTimeoutMs: 300 } }),
      );
      closeAll(a, c);
      // The message says it was the handshake timeout that ended it.
      assert.match(reason(c).message, /TLS handshake failed: no answer within 300 ms/);
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
