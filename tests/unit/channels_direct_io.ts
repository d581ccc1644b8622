/**
 * Synchronous reads and writes of TCP channels (adapters/channels/direct_io.ts): both ends of a
 * connection find their own descriptor, move bytes while the socket has data or room and fall
 * back to Deno's read or write otherwise; bytes arrive whole and in order however writes and
 * reads are cut; a reset peer fails a write as Deno's own write would (a link failure).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DirectSocket } from "../../adapters/channels/direct_io.ts";
import type { ConnChannel } from "../../adapters/channels/conn_channel.ts";
import { connectTcp, listenTcp } from "../../adapters/channels/tcp.ts";
import { failureKind } from "../../domain/engine/failure.ts";

const linux = Deno.build.os === "linux";
const seed = Date.now();
console.log("fast-check seed", seed);

/** A connected pair: the connecting end and the accepted one. */
async function pair(): Promise<{ a: ConnChannel; b: ConnChannel; close: () => void }> {
  const listener = listenTcp("127.0.0.1", 0);
  const port = Number(listener.uri.split(":").pop());
  const [a, b] = await Promise.all([connectTcp("127.0.0.1", port), listener.accept()]);
  listener.close();
  return {
    a,
    b: b as ConnChannel,
    close: () => {
      a.close();
      b.close();
    },
  };
}

Deno.test({
  name: "direct socket: its own descriptor; empty → wait, bytes, end of stream → 0",
  ignore: !linux,
  fn: async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const c = await Deno.connect({ hostname: "127.0.0.1", port: listener.addr.port });
    const s = await listener.accept();
    listener.close();
    try {
      const dc = DirectSocket.of(c);
      const ds = DirectSocket.of(s);
      assert.ok(dc && ds, "both ends found their descriptor");
      assert.notEqual(dc.fd, ds.fd);
      const buf = new Uint8Array(16);
      assert.equal(ds.recv(buf), "wait", "nothing sent yet");
      assert.equal(dc.send(new TextEncoder().encode("hello")), 5);
      // Loopback delivers within the send call; the bytes are there to read now.
      assert.equal(ds.recv(buf), 5);
      assert.equal(new TextDecoder().decode(buf.subarray(0, 5)), "hello");
      await c.closeWrite();
      assert.equal(ds.recv(buf), 0, "end of stream");
    } finally {
      c.close();
      s.close();
    }
  },
});

Deno.test({
  name: "TCP channels read and write directly; bytes arrive whole and in order however cut",
  ignore: !linux,
  fn: async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.integer({ min: 1, max: 3 << 20 }), { minLength: 1, maxLength: 8 }),
        fc.array(fc.integer({ min: 1, max: 2 << 20 }), { minLength: 1, maxLength: 8 }),
        fc.boolean(),
        async (writes, sizes, slowReader) => {
          // Reads cut as `sizes` say, in turn, and a 1 MiB one among them: tiny reads alone
          // would make a run of megabytes take minutes.
          const reads = [...sizes, 1 << 20];
          const { a, b, close } = await pair();
          try {
            assert.ok(a.directIo && b.directIo);
            const total = writes.reduce((n, w) => n + w, 0);
            const data = new Uint8Array(total);
            for (let i = 0; i < total; i += 4093) data[i] = (i * 7 + 1) & 255;
            const got = new Uint8Array(total);
            const reading = (async () => {
              let o = 0;
              let pausedAt = 0;
              for (let i = 0; o < total; i++) {
                // A reader that lags now and then (every 256 KiB) lets the sender's socket fill
                // (its 1 MiB send buffer), so writes also take Deno's path and then the direct
                // one again.
                if (slowReader && o - pausedAt >= 256 << 10) {
                  pausedAt = o;
                  await new Promise((r) => setTimeout(r, 1));
                }
                const size = reads[i % reads.length];
                const n = await b.read(got.subarray(o, Math.min(total, o + size)));
                if (n === null) throw new Error(`end of stream after ${o} bytes`);
                o += n;
              }
              return await b.read(new Uint8Array(1));
            })();
            let o = 0;
            for (const w of writes) {
              const end = o + w;
              while (o < end) o += await a.write(data.subarray(o, end));
            }
            await a.closeWrite();
            assert.equal(await reading, null, "then the end of the stream");
            assert.ok(got.every((x, i) => x === data[i]), "every byte in order");
          } finally {
            close();
          }
        },
      ),
      { seed, numRuns: 12 },
    );
  },
});

Deno.test({
  name: "a write to a peer that reset the connection fails as a link failure, typed as Deno's",
  ignore: !linux,
  fn: async () => {
    const { a, b, close } = await pair();
    try {
      assert.ok(a.directIo);
      // The peer closes with bytes unread: its kernel answers with a reset.
      await a.write(new Uint8Array(1000));
      b.close();
      let failed: unknown = null;
      for (let i = 0; i < 100 && failed === null; i++) {
        try {
          await a.write(new Uint8Array(64 << 10));
        } catch (e) {
          failed = e;
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      assert.ok(
        failed instanceof Deno.errors.ConnectionReset || failed instanceof Deno.errors.BrokenPipe,
        `got ${failed}`,
      );
      assert.equal(failureKind(failed), "link");
    } finally {
      close();
    }
  },
});

Deno.test({
  name: "a write stuck on a peer that stopped reading rejects once its channel is closed",
  ignore: !linux,
  fn: async () => {
    const { a, close } = await pair();
    try {
      const big = new Uint8Array(1 << 20);
      let stuck: Promise<number> | null = null;
      // Direct writes take what fits; the first one that finds no room waits in Deno's write.
      // Nothing reads: once both socket buffers are full (a few MiB), no write can finish.
      for (let i = 0; i < 64 && stuck === null; i++) {
        const w = a.write(big);
        let done = false;
        w.then(() => (done = true), () => (done = true));
        await new Promise((r) => setTimeout(r, 50));
        if (!done) stuck = w;
      }
      assert.ok(stuck, "a write waited for room");
      a.close();
      await assert.rejects(stuck);
    } finally {
      close();
    }
  },
});
