/**
 * Issue 18 item 5, the arrival digest is opt-in (contract.md): without `--arrival-digest` (or
 * FERRY_ARRIVAL_DIGEST=1) a destination holds one copy of RAM and `GET /machine/digest` hashes
 * RAM now; with it the digest is RAM as it arrived (equal to the stopped source's), kept by a
 * copy-on-first-write snapshot that costs up to a second copy of RAM (pages first written while
 * the digest is computed).
 */
import assert from "node:assert/strict";
import { type Json, startAgent, type TestAgent } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { rssMiB } from "./helpers/hostile_streams.ts";

const RAM_MIB = 64;

/** Migrates `src` into `dst`; both end completed. */
async function migrate(src: TestAgent, dst: TestAgent): Promise<void> {
  const r = await src.api<Json>("POST", "/migrations", { uri: dst.incomingUri });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  assert.equal((await src.waitStatus(/^(completed|failed|cancelled)$/)).status, "completed");
  assert.equal((await dst.waitStatus(/^(completed|failed)$/)).status, "completed");
}

/** Waits until the destination's guest has written every page once since it arrived. */
async function everyPageWritten(dst: TestAgent): Promise<void> {
  const end = Date.now() + 30_000;
  const start = (await dst.api<Json>("GET", "/machine")).body.workload["pages-written"];
  for (;;) {
    const now = (await dst.api<Json>("GET", "/machine")).body.workload["pages-written"];
    if (now - start >= RAM_MIB * 256 * 2) return;
    if (Date.now() > end) throw new Error(`the guest wrote only ${now - start} pages`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

Deno.test("arrival digest: opt-in; without it the destination hashes RAM now and holds one copy", async () => {
  const agents: TestAgent[] = [];
  try {
    const ram = ["--ram", `${RAM_MIB}M`];
    const src = await startLocalAgent([...ram, "--fill", "random", "--workload", "increment"]);
    agents.push(src);
    // A guest dirtying at full speed converges without a bandwidth cap and with some downtime.
    await src.api("PATCH", "/parameters", { "max-bandwidth": 0, "downtime-limit": 2000 });
    // One destination without (FERRY_ARRIVAL_DIGEST=0), one with the flag (it wins over 0).
    const plain = await startAgent([...ram, "--incoming", "tcp:127.0.0.1:0"], [], undefined, {
      FERRY_ARRIVAL_DIGEST: "0",
    });
    agents.push(plain);
    const keeping = await startAgent(
      [...ram, "--incoming", "tcp:127.0.0.1:0", "--arrival-digest"],
      [],
      undefined,
      { FERRY_ARRIVAL_DIGEST: "0" },
    );
    agents.push(keeping);

    await migrate(src, plain);
    const sent1 = (await src.api<Json>("GET", "/machine/digest")).body;
    await everyPageWritten(plain);
    const d1 = (await plain.api<Json>("GET", "/machine/digest")).body;
    assert.equal(d1["x-taken"], "now", "without the flag: RAM now");
    assert.notDeepEqual(d1.blocks, sent1.blocks, "the guest ran on: RAM now differs");

    assert.equal((await src.api("POST", "/machine/cont")).status, 202);
    await migrate(src, keeping);
    const sent2 = (await src.api<Json>("GET", "/machine/digest")).body;
    await everyPageWritten(keeping);
    const d2 = (await keeping.api<Json>("GET", "/machine/digest")).body;
    assert.equal(d2["x-taken"], "arrival", "with the flag: RAM as it arrived");
    assert.deepEqual(d2.blocks, sent2.blocks, "= the stopped source's");

    // How much the snapshot copies aside depends on how many pages the guest first-writes
    // while the digest Worker still hashes, a race: the figure is printed, not judged.
    const [r1, r2] = [await rssMiB(plain.pid), await rssMiB(keeping.pid)];
    console.log(
      `RSS without the arrival digest ${r1.toFixed(0)} MiB, with it ${r2.toFixed(0)} MiB`,
    );
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});
