/**
 * Fixtures of the TLS channel tests: this module's PKI (harness/pki.ts's makePki, made once
 * per test module), settled-connection helpers and a checked round trip.
 *
 * @module
 */
import assert from "node:assert/strict";
import type { Channel, ChannelListener } from "../../domain/ports.ts";
import { connectChannel } from "../../adapters/channels/connect.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import type { TlsCreds } from "../../adapters/channels/tls_creds.ts";
import { drainAndHash, pseudoRandomBytes, readAll, sha256 } from "../channels_helpers.ts";
import { makePki, perModule, type Pki } from "../../harness/pki.ts";

export type { Pki };

/** One mebibyte. */
export const MiB = 1024 * 1024;

const modulePki = perModule(makePki);

/**
 * Runs `fn` with this test module's PKI (made on first use, removed when the module unloads:
 * the tests only read it, and put their own sockets and files in it).
 */
export function withPki(fn: (pki: Pki) => Promise<void>): () => Promise<void> {
  return async () => await fn(await modulePki());
}

/** Accepts one peer while `connect` runs; both outcomes, settled. */
export async function meet(
  listener: ChannelListener,
  connect: () => Promise<Channel>,
): Promise<[PromiseSettledResult<Channel>, PromiseSettledResult<Channel>]> {
  const [accepted, connected] = await Promise.allSettled([listener.accept(), connect()]);
  return [accepted, connected];
}

/** Closes every channel that was opened. */
export function closeAll(...results: PromiseSettledResult<Channel>[]): void {
  for (const r of results) if (r.status === "fulfilled") r.value.close();
}

/** The value of a settled promise; rethrows its failure. */
export function value<T>(r: PromiseSettledResult<T>): T {
  if (r.status === "rejected") throw r.reason;
  return r.value;
}

/** The failure of a settled promise (asserts it failed). */
export function reason(r: PromiseSettledResult<unknown>): Error {
  assert.equal(r.status, "rejected", "expected a failure");
  return (r as PromiseRejectedResult).reason;
}

/**
 * Sends `total` bytes client → server in 1 MiB writes from one SharedArrayBuffer view that is
 * changed as soon as each write resolves (so a write that still used the caller's buffer, a
 * lost or a repeated piece all change the hash), reads them with an odd-sized buffer, then
 * checks the return direction after the half-close. Resolves to the one-way seconds.
 */
export async function roundTrip(server: Channel, client: Channel, total: number): Promise<number> {
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

/** A TLS listener on an ephemeral loopback port. */
export async function tlsListen(creds: TlsCreds, handshakeTimeoutMs?: number) {
  return await listenChannel("tcp:127.0.0.1:0", { tls: { creds, handshakeTimeoutMs } });
}

/** A connect function for a TLS client of `listener`. */
export function tlsConnect(listener: ChannelListener, creds: TlsCreds, hostname?: string) {
  return () => connectChannel(listener.uri, { tls: { creds, hostname } });
}

/** Connects `client` through `listener` and checks a round trip of `bytes` bytes. */
export async function assertRoundTrip(
  listener: ChannelListener,
  client: TlsCreds,
  bytes = 1000,
  hostname?: string,
): Promise<void> {
  const [a, c] = await meet(listener, tlsConnect(listener, client, hostname));
  try {
    await roundTrip(value(a), value(c), bytes);
  } finally {
    closeAll(a, c);
  }
}

/** Asserts a good client still gets through `listener` (with a small round trip). */
export function assertStillAccepting(listener: ChannelListener, pki: Pki): Promise<void> {
  return assertRoundTrip(listener, pki.client, 64 * 1024 + 3);
}
