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
  decodeRedirect,
  encodeHello,
  encodeJoin,
  encodeRedirect,
  MAX_REDIRECT_ADDRESS,
} from "../../domain/wire/multifd.ts";
import { decodeFrameHeader, FrameType } from "../../domain/wire/frames.ts";
import { WireError } from "../../domain/wire/wire_error.ts";
import { readRedirect, redirectUri } from "../../domain/engine/multifd_redirect.ts";
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

Deno.test("multifd REDIRECT and JOIN: round trips; lengths bounded", () => {
  fc.assert(
    fc.property(
      fc.uint8Array({ minLength: 16, maxLength: 16 }),
      fc.string({ maxLength: 80 }),
      (token, address) => {
        const f = encodeRedirect({ token, address });
        const h = decodeFrameHeader(f);
        assert.equal(h.type, FrameType.MULTIFD_REDIRECT);
        assert.equal(h.length, f.length - 5);
        const r = decodeRedirect(f.subarray(5));
        assert.deepEqual([r.token, r.address], [token, address]);
        assert.deepEqual(decodeJoin(encodeJoin(token).subarray(5)), token);
      },
    ),
    { seed, numRuns: 200 },
  );
  assert.throws(() =>
    encodeRedirect({ token: uuid, address: "x".repeat(MAX_REDIRECT_ADDRESS + 1) })
  );
  assert.throws(() => decodeRedirect(new Uint8Array(15)), WireError);
  assert.throws(() => decodeRedirect(new Uint8Array(16 + 256)), WireError);
  const badUtf8 = new Uint8Array([...uuid, 0xff, 0xfe]);
  assert.throws(
    () => decodeRedirect(badUtf8),
    (e) => e instanceof WireError && /UTF-8/.test(e.message),
  );
  assert.throws(() => decodeJoin(new Uint8Array(17)), WireError);
  // The frame table bounds a hostile length before any payload is read.
  const huge = new Uint8Array([FrameType.MULTIFD_REDIRECT, 0, 0, 2, 0]); // 512 bytes
  assert.throws(() => decodeFrameHeader(huge), WireError);
});

Deno.test("multifd redirect: the source reads the answer, or fails clearly", async () => {
  const [a, b] = memoryChannelPair(1 << 12);
  await b.write(encodeRedirect({ token: uuid, address: "unix:/tmp/x.sock.rx1" }));
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
