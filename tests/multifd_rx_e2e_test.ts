/**
 * Multifd receive threads, from outside a real destination agent: a redirectable HELLO is sent
 * to a receive thread next to the incoming address (its unix socket sits beside the incoming
 * one once x-multifd is on there); a JOIN with a token nobody issued is closed; a page channel
 * that a receive thread reads and that carries a bad run fails that migration with a clear
 * error, the agent stays up, and an honest multifd migration then completes into it.
 */
import assert from "node:assert/strict";
import { type Json, markAttempt, waitNextEnd, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { HOSTILE_AGENT_ARGS, PAGE, validFrames } from "./helpers/hostile_streams.ts";
import { concat } from "./helpers/bytes.ts";
import { encodePageRun, encodeStreamHeader } from "../domain/wire/mod.ts";
import {
  decodeRedirect,
  encodeHello,
  encodeJoin,
  encodeSetup,
  type MultifdRedirect,
} from "../domain/wire/multifd.ts";
import { FrameType } from "../domain/wire/frames.ts";
import { waitFor } from "../harness/wait.ts";

/** Reads `n` bytes from `c`, or null at end of stream. */
async function readN(c: Deno.Conn, n: number): Promise<Uint8Array | null> {
  const b = new Uint8Array(n);
  for (let off = 0; off < n;) {
    const r = await c.read(b.subarray(off));
    if (r === null) return null;
    off += r;
  }
  return b;
}

/** Opens page channel `id` of `channels` of migration `uuid` and reads the redirect. */
async function hello(
  path: string,
  uuid: Uint8Array,
  id: number,
  channels: number,
): Promise<MultifdRedirect> {
  const c = await Deno.connect({ transport: "unix", path });
  try {
    await c.write(concat([
      encodeStreamHeader("multifd"),
      encodeHello({ uuid, id, channels, redirectable: true }),
    ]));
    const h = await readN(c, 5);
    assert.ok(h, "an answer to the HELLO");
    assert.equal(h[0], FrameType.MULTIFD_REDIRECT);
    const len = new DataView(h.buffer).getUint32(1);
    return decodeRedirect((await readN(c, len))!);
  } finally {
    c.close();
  }
}

/** Joins the receive thread at `address` with `token`; returns the connection. */
async function join(address: string, token: Uint8Array): Promise<Deno.Conn> {
  const path = address.replace(/^unix:/, "");
  const c = await Deno.connect({ transport: "unix", path });
  await c.write(concat([encodeStreamHeader("multifd"), encodeJoin(token)]));
  return c;
}

/** Resolves once the destination closed `c` (a deadline says so if it never does). */
async function closedByPeer(c: Deno.Conn, what: string): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const n = await Promise.race([
    c.read(new Uint8Array(16)).catch(() => null),
    new Promise<string>((r) => timer = setTimeout(() => r("still open after 20 s"), 20_000)),
  ]);
  clearTimeout(timer);
  assert.equal(n, null, what);
}

Deno.test("multifd receive threads: redirect, tokens, a failing thread's channel, then an honest migration", async (t) => {
  const dir = await Deno.makeTempDir();
  const sock = `${dir}/in.sock`;
  try {
    await withAgents(async (track) => {
      const [dst, src] = await startLocalAgents(
        track,
        [...HOSTILE_AGENT_ARGS, "--incoming", `unix:${sock}`],
        [...HOSTILE_AGENT_ARGS, "--fill", "random", "--workload", "increment", "-S"],
      );
      const uuid = crypto.getRandomValues(new Uint8Array(16));

      await t.step("x-multifd on at the destination starts receive threads beside it", async () => {
        assert.equal((await dst.api("PATCH", "/capabilities", { "x-multifd": true })).status, 200);
        await waitFor(`a receive thread's socket ${sock}.rx0`, async () => {
          try {
            return (await Deno.lstat(`${sock}.rx0`)).isSocket;
          } catch {
            return false;
          }
        });
        const r = await hello(sock, uuid, 0, 1);
        assert.match(r.address, new RegExp(`^unix:${sock}\\.rx\\d$`));
      });

      await t.step("a JOIN with a token nobody issued is closed", async () => {
        const r = await hello(sock, uuid, 0, 1);
        const forged = r.token.slice();
        forged[0] ^= 0xff;
        const c = await join(r.address, forged);
        try {
          await closedByPeer(c, "the forged JOIN is closed");
        } finally {
          c.close();
        }
      });

      await t.step(
        "a bad run on a receive thread's channel fails that migration only",
        async () => {
          const mark = await markAttempt(dst);
          const r = await hello(sock, uuid, 0, 1);
          const channel = await join(r.address, r.token);
          const main = await Deno.connect({ transport: "unix", path: sock });
          try {
            // The main stream: header, CONFIG, the page channels' setup; then it waits.
            const frames = validFrames();
            await main.write(concat([frames[0], frames[1], encodeSetup(uuid, 64, 1)]));
            // Block 9 does not exist here.
            await channel.write(encodePageRun(9, 0, PAGE, new Uint8Array(PAGE).fill(1)));
            const info = await waitNextEnd(dst, mark, 30_000);
            assert.equal(info.status, "failed", JSON.stringify(info));
            // The channel's own reason, not the closed main stream's.
            assert.match(info["error-desc"], /RAM block|block 9/, JSON.stringify(info));
          } finally {
            main.close();
            channel.close();
          }
          assert.equal((await dst.api("GET", "/healthz")).status, 200);
          assert.equal((await dst.api<Json>("GET", "/machine")).body.runstate, "inmigrate");
        },
      );

      await t.step("an honest multifd migration then completes into it", async () => {
        await dst.waitStatus(/^(setup|failed)$/);
        const mark = await markAttempt(dst);
        await src.api("PATCH", "/parameters", { "max-bandwidth": 0, "x-multifd-channels": 2 });
        assert.equal((await src.api("PATCH", "/capabilities", { "x-multifd": true })).status, 200);
        assert.equal((await src.api("POST", "/machine/cont")).status, 202);
        assert.equal((await src.api("POST", "/migrations", { uri: `unix:${sock}` })).status, 202);
        const info = await src.waitStatus(/completed|failed/);
        assert.equal(info.status, "completed", JSON.stringify(info));
        assert.ok(info.ram["multifd-bytes"] > 0);
        const arrived = await waitNextEnd(dst, mark);
        assert.equal(arrived.status, "completed", JSON.stringify(arrived));
        await dst.api("POST", "/machine/stop");
        const a = (await src.api<Json>("GET", "/machine/digest")).body;
        const b = (await dst.api<Json>("GET", "/machine/digest")).body;
        assert.deepEqual(a.blocks, b.blocks);
        assert.equal(b["x-increment-check"].ok, true, JSON.stringify(b["x-increment-check"]));
      });
    });
    // The receive threads' sockets went with the agent.
    const left = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(left.filter((n) => n.includes(".rx")), [], `left: ${left}`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
