/**
 * Issue 6, the return path as the source sees it: a fake destination (a raw TCP server)
 * reads and discards the source's stream and answers with hostile return-path bytes. Each
 * migration fails with a clear `error-desc`; the source stays up, its guest keeps running
 * with its memory untouched, and a real migration afterwards completes. The cases are steps
 * of one source.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type AgentProcess, type Json, startAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { assertClearError, rssMiB } from "./helpers/hostile_streams.ts";
import { concat } from "./helpers/bytes.ts";
import { encodeRpMessage, RpType } from "../domain/wire/mod.ts";
import { PAST_THE_POINT } from "../domain/engine/no_return.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const RAM = 1 << 20;
/** Bytes of pc.ram's received bitmap: a bit per page. */
const BITMAP = RAM / 4096 / 8;

function rp(type: number, data: Uint8Array | number[], length = data.length): Uint8Array {
  const b = new Uint8Array(4 + data.length);
  const v = new DataView(b.buffer);
  v.setUint16(0, type);
  v.setUint16(2, length);
  b.set(data, 4);
  return b;
}

function reqData(start: number, len: number, name: string, nameLen?: number): Uint8Array {
  const n = new TextEncoder().encode(name);
  const d = new Uint8Array(13 + n.length);
  const v = new DataView(d.buffer);
  v.setUint32(0, Math.floor(start / 2 ** 32));
  v.setUint32(4, start >>> 0);
  v.setUint32(8, len);
  d[12] = nameLen ?? n.length;
  d.set(n, 13);
  return d;
}

function u64(n: bigint): number[] {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, n);
  return [...b];
}

const name = (s: string) => [s.length, ...new TextEncoder().encode(s)];

/** Messages a source must not act on, each with the text it must fail with. */
const BAD: [string, Uint8Array, RegExp][] = [
  ["type 0", rp(0, []), /RP: Received invalid message 0x0000/],
  ["type 7", rp(7, [0, 0, 0, 0]), /RP: Received invalid message 0x0007/],
  ["type 0xffff", rp(0xffff, []), /RP: Received invalid message 0xffff/],
  [
    "SHUT length 3",
    rp(RpType.SHUT, [0, 0, 0]),
    /'SHUT' message \(0x0001\) with incorrect length 3/,
  ],
  ["length 513", rp(RpType.REQ_PAGES_ID, [], 513), /incorrect length 513 expecting at most 512/],
  [
    "name length",
    rp(RpType.REQ_PAGES_ID, reqData(0, 4096, "pc.ram", 9)),
    /Req_Page_id with length/,
  ],
  ["unknown block", rp(RpType.REQ_PAGES_ID, reqData(0, 4096, "nope")), /unknown RAM block 'nope'/],
  ["misaligned", rp(RpType.REQ_PAGES_ID, reqData(100, 4096, "pc.ram")), /Misaligned page request/],
  ["empty request", rp(RpType.REQ_PAGES_ID, reqData(0, 0, "pc.ram")), /Misaligned page request/],
  ["past the end", rp(RpType.REQ_PAGES_ID, reqData(RAM, 4096, "pc.ram")), /past the end/],
  ["huge start", rp(RpType.REQ_PAGES_ID, reqData(2 ** 53 + 2, 4096, "pc.ram")), /out of range/],
  [
    "REQ_PAGES first",
    rp(RpType.REQ_PAGES, reqData(0, 4096, "").subarray(0, 12)),
    /without a block/,
  ],
  ["bitmap block", rp(RpType.RECV_BITMAP, name("vga")), /invalid block name 'vga'/],
  [
    "bitmap size",
    concat([rp(RpType.RECV_BITMAP, name("pc.ram")), new Uint8Array(u64(1n << 40n))]),
    /received bitmap of 1099511627776 bytes/,
  ],
  [
    "bitmap end",
    concat([
      rp(RpType.RECV_BITMAP, name("pc.ram")),
      new Uint8Array([...u64(BigInt(BITMAP)), ...new Uint8Array(BITMAP), ...u64(7n)]),
    ]),
    /end marker missing/,
  ],
  [
    "resume ack 2",
    encodeRpMessage({ type: RpType.RESUME_ACK, value: 2 }),
    /illegal resume_ack value 2/,
  ],
  ["SHUT error", encodeRpMessage({ type: RpType.SHUT, error: 5 }), /Sibling indicated error 5/],
];

/** Messages the source may accept without harm in precopy. */
const HARMLESS = [
  encodeRpMessage({ type: RpType.PONG, value: 1 }),
  encodeRpMessage({ type: RpType.REQ_PAGES_ID, start: 4096, len: 4096, name: "pc.ram" }),
  encodeRpMessage({ type: RpType.RESUME_ACK, value: 1 }),
];

/**
 * One migration into the fake destination: reads (and drops) what the source sends, writes
 * `reply`, then, with `hangUp`, closes; otherwise waits until the source gives up.
 */
async function attempt(src: AgentProcess, l: Deno.TcpListener, reply: Uint8Array, hangUp = false) {
  const port = (l.addr as Deno.NetAddr).port;
  const r = await src.api("POST", "/migrations", { uri: `tcp:127.0.0.1:${port}` });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const conn = await l.accept();
  const timer = setTimeout(() => conn.close(), 20_000);
  try {
    const draining = (async () => {
      const sink = new Uint8Array(1 << 20);
      try {
        while (await conn.read(sink) !== null) { /* discard */ }
      } catch { /* closed */ }
    })();
    try {
      await conn.write(reply);
    } catch { /* the source already hung up */ }
    if (hangUp) conn.close();
    await draining;
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  const info = await src.waitStatus(/failed|completed|cancelled/, 20_000);
  assert.equal(info.status, "failed", JSON.stringify(info));
  assertClearError(info["error-desc"], "return path");
  assert.equal((await src.api("GET", "/healthz")).status, 200);
  // Before the point of no return the guest runs on; a source that got past it (a busy host
  // can let the device state leave before the reply is read) keeps its guest stopped and
  // says so (issue 18): never two guests. Both are what a user must see.
  const runstate = (await src.api<Json>("GET", "/machine")).body.runstate;
  if (runstate !== "running") {
    assert.equal(runstate, "postmigrate");
    assert.ok(info["error-desc"].includes(PAST_THE_POINT), info["error-desc"]);
    assert.equal((await src.api("POST", "/machine/cont")).status, 202, "the guest runs again");
  }
  return info;
}

Deno.test({
  name: "hostile return path: one source meets hostile replies, then a real destination",
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      await withAgents(async (track) => {
        // The source is a process: its RSS is checked.
        const [src, dst] = await Promise.all([
          startAgent(["--ram", String(RAM), "--fill", "random", "--workload", "idle"]).then(track),
          startLocalAgent(["--ram", String(RAM), "--incoming", "tcp:127.0.0.1:0"]).then(track),
        ]);
        // 1 MiB/s: the 1 MiB guest takes a second, so the hostile reply (written at once) is
        // read long before the device state leaves, even on a busy host; past that point of no
        // return a failure rightly leaves the source's guest stopped (issue 18), not this
        // test's subject.
        await src.api("PATCH", "/parameters", { "max-bandwidth": 1 << 20 });
        const returnPath = await src.api("PATCH", "/capabilities", { "return-path": true });
        assert.equal(returnPath.status, 200);
        const digest = (await src.api<Json>("GET", "/machine/digest?at=now")).body.blocks;

        await t.step(
          "the source fails each migration clearly; its guest runs on untouched",
          async () => {
            const rss0 = await rssMiB(src.pid);
            for (const [what, bytes, text] of BAD) {
              const info = await attempt(src, l, bytes);
              assert.match(info["error-desc"], text, what);
            }
            // Harmless messages, then one the source must refuse, then garbage.
            await fc.assert(
              fc.asyncProperty(
                fc.array(fc.constantFrom(...HARMLESS), { maxLength: 3 }),
                // REQ_PAGES is refused only before any block was named; a bad RESUME_ACK is the
                // subject of its own step below.
                fc.nat({ max: BAD.length - 1 }).filter((i) =>
                  !/REQ_PAGES first|resume/.test(BAD[i][0])
                ),
                fc.uint8Array({ maxLength: 64 }),
                async (before, bad, after) => {
                  const info = await attempt(src, l, concat([...before, BAD[bad][1], after]));
                  assert.match(info["error-desc"], BAD[bad][2]);
                },
              ),
              { seed, numRuns: 10 },
            );
            // Random bytes, then the fake destination hangs up.
            await fc.assert(
              fc.asyncProperty(fc.uint8Array({ maxLength: 600 }), async (b) => {
                await attempt(src, l, b, true);
              }),
              { seed, numRuns: 6 },
            );
            const now = (await src.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
            assert.deepEqual(now, digest);
            const rss1 = await rssMiB(src.pid);
            assert.ok(rss1 - rss0 < 200, `source RSS grew from ${rss0} to ${rss1} MiB`);
          },
        );

        await t.step(
          "the first error is the one reported (a bad RESUME_ACK, then garbage)",
          async () => {
            // QEMU's source_return_path_thread stops at the first bad message and its error is
            // the migration's (later errors never replace the first); here a bad RESUME_ACK
            // value is followed by an invalid message.
            const info = await attempt(
              src,
              l,
              concat([encodeRpMessage({ type: RpType.RESUME_ACK, value: 2 }), rp(0, [])]),
            );
            assert.match(info["error-desc"], /illegal resume_ack value 2/);
          },
        );

        await t.step(
          "a real destination: the migration completes, the memory untouched",
          async () => {
            await src.api("POST", "/migrations", { uri: dst.incomingUri });
            const done = await src.waitStatus(/completed|failed|cancelled/, 30_000);
            assert.equal(done.status, "completed", JSON.stringify(done));
            const arrived = (await dst.api<Json>("GET", "/machine/digest?at=now")).body.blocks;
            assert.deepEqual(arrived, digest);
          },
        );
      });
    } finally {
      l.close();
    }
  },
});
