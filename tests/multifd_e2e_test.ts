/**
 * Multifd between two real agents: 1, 2 and 4 page channels over tcp and unix, each with
 * its own socket (and, on the source, its own Worker); digests equal; a channel with the
 * wrong migration uuid is refused and the migration goes on.
 */
import assert from "node:assert/strict";
import { type TestAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { encodeStreamHeader } from "../domain/wire/frames.ts";
import { encodeHello } from "../domain/wire/multifd.ts";
import { createMultifdShared, MF, stopChannels } from "../domain/engine/multifd_shared.ts";

/**
 * The source's 16 MiB guest, its vCPU incrementing its RAM, migrates over `channels` page
 * channels to `dst`. The source runs its guest from just before the migration (`cont`: it
 * starts paused, -S, and each migration leaves it in postmigrate): it dirties RAM while the
 * pages go. `stray`: a page channel of another migration reaches the destination first; it
 * must be closed, and the migration still completes.
 */
async function multifd(src: TestAgent, dst: TestAgent, channels: number, stray = false) {
  await src.api("PATCH", "/parameters", {
    "max-bandwidth": 0,
    "x-multifd-channels": channels,
    "x-multifd-page-count": 64,
  });
  assert.equal((await src.api("PATCH", "/capabilities", { "x-multifd": true })).status, 200);
  const strayConn = stray ? await strayChannel(dst.incomingUri!) : null;
  try {
    assert.equal((await src.api("POST", "/machine/cont")).status, 202);
    assert.equal((await src.api("POST", "/migrations", { uri: dst.incomingUri })).status, 202);
    const info = await src.waitStatus(/completed|failed/);
    assert.equal(info.status, "completed", JSON.stringify(info));
    assert.ok(info.ram["multifd-bytes"] > 8 << 20, `multifd-bytes ${info.ram["multifd-bytes"]}`);
    assert.ok(info.ram.transferred >= info.ram["multifd-bytes"]);
    assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
    await dst.api("POST", "/machine/stop");
    const a = (await src.api("GET", "/machine/digest")).body;
    const b = (await dst.api("GET", "/machine/digest")).body;
    assert.deepEqual(a.blocks, b.blocks);
    assert.equal(b["x-increment-check"].ok, true, JSON.stringify(b["x-increment-check"]));
    if (strayConn) {
      // Closed by the destination: the read ends (a deadline, should it stay open).
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        strayConn.read(new Uint8Array(16)).catch(() => null),
        new Promise<string>((r) => timer = setTimeout(() => r("still open after 30 s"), 30_000)),
      ]);
      clearTimeout(timer);
      assert.equal(n, null, "the stray channel is closed");
    }
  } finally {
    strayConn?.close();
  }
}

/** Connects to `uri` as page channel 0 of 2 of a migration with another uuid. */
async function strayChannel(uri: string): Promise<Deno.Conn> {
  const port = Number(uri.split(":").pop());
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const hello = new Uint8Array([
    ...encodeStreamHeader("multifd"),
    ...encodeHello({ uuid: new Uint8Array(16).fill(7), id: 0, channels: 2 }),
  ]);
  await conn.write(hello);
  return conn;
}

// One source for the four migrations, each to a destination of its own, all started at once.
Deno.test("multifd: one source over 1, 2 and 4 channels (tcp) and 2 (unix socket)", async (t) => {
  const dir = await Deno.makeTempDir();
  try {
    await withAgents(async (track) => {
      const tcp = ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"];
      const [src, d1, d2, d4, du] = await startLocalAgents(
        track,
        ["--ram", "16M", "--fill", "random", "--workload", "increment", "-S"],
        tcp,
        tcp,
        tcp,
        ["--ram", "16M", "--incoming", `unix:${dir}/m.sock`],
      );
      await t.step("1 channel over tcp", () => multifd(src, d1, 1));
      await t.step(
        "2 channels over tcp; a channel with the wrong uuid is refused, the migration goes on",
        () => multifd(src, d2, 2, true),
      );
      await t.step("4 channels over tcp", () => multifd(src, d4, 4));
      await t.step("2 channels over a unix socket", () => multifd(src, du, 2));
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("multifd stop: a channel about to wait for the next pass cannot sleep through it", () => {
  const ctl = new Int32Array(createMultifdShared(2, 0).ctl);
  Atomics.store(ctl, MF.GEN, 3);
  // A channel read GEN = 3 and STOP = 0, and is about to wait on GEN...
  const seen = Atomics.load(ctl, MF.GEN);
  assert.equal(Atomics.load(ctl, MF.STOP), 0);
  stopChannels(ctl);
  // ...its wait must not block: GEN moved with the stop (a stop on STOP alone left it
  // waiting for its 1 s timeout).
  const w = Atomics.waitAsync(ctl, MF.GEN, seen, 1000);
  assert.equal(w.async, false);
  assert.equal(w.value, "not-equal");
  assert.equal(Atomics.load(ctl, MF.STOP), 1);
});
