/**
 * A page channel's redirect (wire/multifd.ts, engine/multifd_redirect.ts): HELLO with and
 * without its flags byte, MULTIFD_REDIRECT and MULTIFD_JOIN round trips and bounds, the
 * source's reading of the answer, and where a source lets a destination send its channel.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  decodeHello,
  decodeJoin,
  decodeJoined,
  decodeRedirect,
  encodeHello,
  encodeJoin,
  encodeJoined,
  encodeRedirect,
  encodeStay,
  MAX_REDIRECT_ADDRESS,
  type MultifdHello,
} from "../../domain/wire/multifd.ts";
import { decodeFrameHeader, FrameType } from "../../domain/wire/frames.ts";
import { WireError } from "../../domain/wire/wire_error.ts";
import {
  openPageChannel,
  readRedirect,
  redirectUri,
} from "../../domain/engine/multifd_redirect.ts";
import { FrameReader } from "../../domain/wire/frame_reader.ts";
import { waitFor } from "../../harness/wait.ts";
import { ConnChannel } from "../../adapters/channels/conn_channel.ts";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { LinkError } from "../../domain/engine/failure.ts";

const seed = Date.now();
console.log("fast-check seed", seed);
const uuid = new Uint8Array(16).fill(3);

Deno.test("multifd HELLO: 20 bytes without flags, 21 with; unknown flags are refused", () => {
  const plain = encodeHello({ uuid, id: 1, channels: 2 });
  assert.equal(decodeFrameHeader(plain).length, 20);
  assert.equal(decodeHello(plain.subarray(5)).redirectable, undefined);
  const flagged = encodeHello({ uuid, id: 1, channels: 2, redirectable: true });
  assert.deepEqual(decodeFrameHeader(flagged), { type: FrameType.MULTIFD_HELLO, length: 21 });
  const h = decodeHello(flagged.subarray(5));
  assert.deepEqual([h.id, h.channels, h.redirectable], [1, 2, true]);
  const odd = flagged.slice(5);
  odd[20] = 0x82;
  assert.throws(
    () => decodeHello(odd),
    (e) => e instanceof WireError && /unknown flags 0x82/.test(e.message),
  );
  assert.throws(() => decodeHello(new Uint8Array(22)), WireError);
});

Deno.test("multifd REDIRECT, JOIN and JOINED: round trips; lengths bounded", () => {
  const bytes16 = fc.uint8Array({ minLength: 16, maxLength: 16 });
  fc.assert(
    fc.property(bytes16, bytes16, fc.string({ maxLength: 80 }), (token, answer, address) => {
      const f = encodeRedirect({ token, answer, address });
      const h = decodeFrameHeader(f);
      assert.equal(h.type, FrameType.MULTIFD_REDIRECT);
      assert.equal(h.length, f.length - 5);
      const r = decodeRedirect(f.subarray(5));
      assert.deepEqual([r.token, r.answer, r.address], [token, answer, address]);
      assert.deepEqual(decodeJoin(encodeJoin(token).subarray(5)), token);
      assert.deepEqual(decodeJoined(encodeJoined(answer).subarray(5)), answer);
    }),
    { seed, numRuns: 200 },
  );
  assert.equal(decodeRedirect(encodeStay().subarray(5)).address, "", "stay: no address");
  assert.throws(() =>
    encodeRedirect({ token: uuid, answer: uuid, address: "x".repeat(MAX_REDIRECT_ADDRESS + 1) })
  );
  assert.throws(() => decodeRedirect(new Uint8Array(31)), WireError);
  assert.throws(() => decodeRedirect(new Uint8Array(32 + 256)), WireError);
  assert.throws(() => decodeJoined(new Uint8Array(15)), WireError);
  const badUtf8 = new Uint8Array([...uuid, ...uuid, 0xff, 0xfe]);
  assert.throws(
    () => decodeRedirect(badUtf8),
    (e) => e instanceof WireError && /UTF-8/.test(e.message),
  );
  assert.throws(() => decodeJoin(new Uint8Array(17)), WireError);
  // The frame table bounds a hostile length before any payload is read.
  const huge = new Uint8Array([FrameType.MULTIFD_REDIRECT, 0, 0, 2, 0]); // 512 bytes
  assert.throws(() => decodeFrameHeader(huge), WireError);
  const joined = new Uint8Array([FrameType.MULTIFD_JOINED, 0, 0, 0, 17]);
  assert.throws(() => decodeFrameHeader(joined), WireError);
});

Deno.test("multifd redirect: the source reads the answer, or fails clearly", async () => {
  const [a, b] = memoryChannelPair(1 << 12);
  await b.write(encodeRedirect({ token: uuid, answer: uuid, address: "unix:/tmp/x.sock.rx1" }));
  const r = await readRedirect(a, 5000);
  assert.equal(r.address, "unix:/tmp/x.sock.rx1");
  // Something else than REDIRECT.
  await b.write(encodeJoin(uuid));
  await assert.rejects(
    readRedirect(a, 5000),
    (e) => e instanceof WireError && /0x34/.test(e.message),
  );
  a.close();
  b.close();
  // A destination that never answers: a link timeout.
  const [c, d] = memoryChannelPair(1 << 12);
  await assert.rejects(
    readRedirect(c, 200),
    (e) => e instanceof LinkError && /no answer to HELLO within 0.2 s/.test(e.message),
  );
  // One that closes first.
  const [e, f] = memoryChannelPair(1 << 12);
  f.close();
  await assert.rejects(
    readRedirect(e, 5000),
    (x) => x instanceof WireError && /closed/.test(x.message),
  );
  for (const ch of [d, e]) ch.close();
});

Deno.test("multifd redirect: only next to the migration's URI", () => {
  // TCP: the port is taken, the host stays the one the source was given.
  assert.equal(redirectUri("tcp:127.0.0.1:4444", "tcp:0.0.0.0:5555"), "tcp:127.0.0.1:5555");
  assert.equal(redirectUri("tcp:[::1]:4444", "tcp:[::1]:5555"), "tcp:[::1]:5555");
  // unix: PATH.rxN beside PATH.
  assert.equal(redirectUri("unix:/run/m.sock", "unix:/run/m.sock.rx12"), "unix:/run/m.sock.rx12");
  for (
    const [from, to] of [
      ["unix:/run/m.sock", "unix:/etc/passwd"],
      ["unix:/run/m.sock", "unix:/run/m.sock.rx"],
      ["unix:/run/m.sock", "unix:/run/m.sock.rx1/../x"],
      ["unix:/run/m.sock", "tcp:127.0.0.1:80"],
      ["tcp:127.0.0.1:4444", "unix:/run/m.sock.rx0"],
      ["tcp:127.0.0.1:4444", "exec:rm -rf /"],
      ["tcp:127.0.0.1:4444", "tcp:127.0.0.1:0"],
      ["tcp:127.0.0.1:4444", "nonsense"],
    ]
  ) {
    assert.throws(
      () => redirectUri(from, to),
      (e) => e instanceof WireError && /is not next to/.test(e.message),
      `${from} → ${to}`,
    );
  }
});

/** A fake destination at `path`: answers each redirectable HELLO with `answer`. */
function fakeDestination(
  path: string,
  answer: (hello: MultifdHello) => Uint8Array,
): { hellos: MultifdHello[]; close: () => void; conns: Deno.Conn[] } {
  const l = Deno.listen({ transport: "unix", path });
  const hellos: MultifdHello[] = [];
  const conns: Deno.Conn[] = [];
  (async () => {
    for await (const c of l) {
      conns.push(c);
      const r = new FrameReader(new ConnChannel(c));
      await r.readStreamHeader("multifd");
      await r.next();
      const h = decodeHello(await r.readPayload());
      hellos.push(h);
      if (h.redirectable) await c.write(answer(h));
    }
  })().catch(() => {});
  const close = () => {
    l.close();
    conns.forEach((c) => c.close());
  };
  return { hellos, conns, close };
}

Deno.test("multifd redirect: a receive thread that cannot be reached, or is not the destination's, sends the channel back to the URI", async () => {
  const dir = await Deno.makeTempDir();
  const hello = { uuid, id: 1, channels: 2 };
  const opts = (notes: string[]) => ({
    timeoutMs: 5000,
    rateLimit: 0,
    onFallback: (why: string) => notes.push(why),
  });
  try {
    // 1. Nothing listens where the redirect points (a port forward, a firewall).
    let dest = fakeDestination(
      `${dir}/a.sock`,
      () => encodeRedirect({ token: uuid, answer: uuid, address: `unix:${dir}/a.sock.rx0` }),
    );
    let notes: string[] = [];
    let opened = await openPageChannel(`unix:${dir}/a.sock`, hello, opts(notes));
    await waitFor("the second HELLO", () => dest.hellos.length === 2);
    assert.deepEqual(dest.hellos.map((h) => h.redirectable), [true, undefined]);
    assert.equal(notes.length, 1);
    assert.match(notes[0], /channel 1: its receive thread at unix:.*\.rx0 was not reached/);
    assert.ok(opened.bytesBefore > 0, "the first HELLO's bytes count");
    opened.link.close();
    dest.close();

    // 2. Something else listens there: it takes the JOIN and answers wrongly, or hangs up.
    for (const impostor of ["wrong answer", "hang up"]) {
      const at = `${dir}/${impostor.replace(" ", "-")}.sock`;
      dest = fakeDestination(
        at,
        () => encodeRedirect({ token: uuid, answer: uuid, address: `unix:${at}.rx1` }),
      );
      const other = Deno.listen({ transport: "unix", path: `${at}.rx1` });
      const serving = (async () => {
        const c = await other.accept();
        await c.read(new Uint8Array(64));
        if (impostor === "wrong answer") await c.write(encodeJoined(new Uint8Array(16).fill(9)));
        c.close();
      })();
      notes = [];
      opened = await openPageChannel(`unix:${at}`, hello, opts(notes));
      await serving;
      await waitFor("the second HELLO", () => dest.hellos.length === 2);
      assert.deepEqual(dest.hellos.map((h) => h.redirectable), [true, undefined], impostor);
      assert.equal(notes.length, 1, impostor);
      if (impostor === "wrong answer") assert.match(notes[0], /not as the destination's/);
      opened.link.close();
      other.close();
      dest.close();
    }

    // 3. A redirect away from the URI is refused outright: no channel goes anywhere.
    dest = fakeDestination(
      `${dir}/c.sock`,
      () => encodeRedirect({ token: uuid, answer: uuid, address: "unix:/tmp/elsewhere.sock" }),
    );
    notes = [];
    await assert.rejects(
      openPageChannel(`unix:${dir}/c.sock`, hello, opts(notes)),
      (e) => e instanceof WireError && /is not next to/.test(e.message),
    );
    assert.deepEqual(notes, []);
    dest.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
