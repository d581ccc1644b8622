/**
 * Huge pages between real agents: a guest on huge pages migrates into a destination on 4 KiB
 * pages and on again into one on huge pages, arriving whole each time; each agent reports the
 * page size asked for and the bytes huge pages back (GET /machine, /metrics), checked against
 * the kernel's own figure for the process; `--huge-pages on` without FFI runs on 4 KiB pages
 * and says so once; a bad value stops the agent with a clear message.
 */
import assert from "node:assert/strict";
import { hugePagesUnavailable, thpMode } from "../adapters/memory/huge_pages.ts";
import { type AgentProcess, type Json, startAgent, withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";

const MiB = 2 ** 20;
const HUGE = 2 * MiB;
const CAN = hugePagesUnavailable() === null;

/** AnonHugePages of the whole agent process, from the kernel (smaps_rollup), bytes. */
async function processHugeBytes(a: AgentProcess): Promise<number> {
  const text = await Deno.readTextFile(`/proc/${a.pid}/smaps_rollup`);
  return Number(/AnonHugePages:\s+(\d+) kB/.exec(text)![1]) * 1024;
}

async function backing(a: AgentProcess): Promise<Json> {
  return (await a.api<Json>("GET", "/machine")).body["x-ram-backing"];
}

/** The value of an unlabelled gauge in the agent's /metrics. */
async function gauge(a: AgentProcess, name: string): Promise<number> {
  const text = await (await fetch(`${a.base}/metrics`)).text();
  const line = text.split("\n").find((l) => l.startsWith(name + " "));
  assert.ok(line, `${name} in /metrics`);
  return Number(line.split(" ")[1]);
}

/** Checks what an agent whose RAM is all touched reports about its pages. */
async function expectBacking(a: AgentProcess, huge: boolean, ram: number): Promise<void> {
  const b = await backing(a);
  assert.equal(b["page-size"], huge ? HUGE : 4096, JSON.stringify(b));
  if (huge) {
    // Each block loses at most one 2 MiB page to the buffer's unaligned start.
    assert.ok(b["advised-bytes"] >= ram - 2 * HUGE && b["advised-bytes"] <= ram, JSON.stringify(b));
    assert.equal(b["huge-page-bytes"], b["advised-bytes"], "every advised byte on a huge page");
    assert.ok(await processHugeBytes(a) >= b["huge-page-bytes"], "the kernel agrees");
  } else {
    assert.deepEqual([b["advised-bytes"], b["huge-page-bytes"]], [0, 0]);
    if (thpMode() === "madvise") {
      assert.ok(await processHugeBytes(a) < HUGE, "no huge pages anywhere in the process");
    }
  }
  assert.equal(await gauge(a, "ferry_ram_huge_page_bytes"), b["huge-page-bytes"]);
  assert.equal(await gauge(a, "ferry_ram_page_size_bytes"), b["page-size"]);
}

async function migrate(src: AgentProcess, dst: AgentProcess): Promise<void> {
  await src.api("PATCH", "/parameters", { "max-bandwidth": 10 * 2 ** 30, "downtime-limit": 300 });
  const r = await src.api("POST", "/migrations", { uri: dst.incomingUri });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  const info = await src.waitStatus(/completed|failed|cancelled/);
  assert.equal(info.status, "completed", JSON.stringify(info));
  assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
}

Deno.test("huge pages: a guest goes from huge pages to 4 KiB pages and back, arriving whole", async () => {
  if (!CAN) return;
  await withAgents(async (track) => {
    const blocks = ["--ram", "16M", "--ram-block", "extra=4M"];
    const incoming = ["--incoming", "tcp:127.0.0.1:0"];
    const small = track(await startAgent([...blocks, ...incoming, "--huge-pages", "off"]));
    const bigAgain = track(
      await startAgent([...blocks, ...incoming], [], undefined, {
        FERRY_HUGE_PAGES: "on",
      }),
    );
    const src = track(
      await startAgent([
        ...blocks,
        "--fill",
        "random",
        "--workload",
        "increment,start=1M,end=9M",
        "--huge-pages",
        "on",
      ]),
    );
    assert.equal((await backing(bigAgain))["huge-pages"], "on", "FERRY_HUGE_PAGES=on");
    for (const [a, huge] of [[src, true], [small, false], [bigAgain, true]] as const) {
      await expectBacking(a, huge, 20 * MiB);
    }
    await migrate(src, small);
    await small.api("POST", "/machine/stop");
    const first = (await src.api<Json>("GET", "/machine/digest")).body;
    const arrived = (await small.api<Json>("GET", "/machine/digest")).body;
    assert.deepEqual(arrived.blocks, first.blocks, "4 KiB destination: the RAM as it left");
    await small.api("POST", "/machine/cont");
    await migrate(small, bigAgain);
    await bigAgain.api("POST", "/machine/stop");
    const second = (await small.api<Json>("GET", "/machine/digest")).body;
    const again = (await bigAgain.api<Json>("GET", "/machine/digest")).body;
    assert.deepEqual(again.blocks, second.blocks, "huge-page destination: the RAM as it left");
    assert.equal(again["x-increment-check"].ok, true, JSON.stringify(again["x-increment-check"]));
    await expectBacking(bigAgain, true, 20 * MiB);
  });
});

Deno.test("huge pages: --huge-pages on without FFI runs on 4 KiB pages and says so once", async () => {
  const a = await startAgent(["--ram", "8M", "--huge-pages", "on"], ["--deny-ffi"]);
  try {
    const b = await backing(a);
    assert.deepEqual(
      [b["huge-pages"], b["page-size"], b.thp, b["huge-page-bytes"]],
      ["on", 4096, null, null],
    );
    assert.match(b.reason, /^huge pages unavailable: needs --allow-ffi/);
    const lines = a.log().split("\n").filter((l) => l.includes('"msg":"guest RAM pages"'));
    assert.equal(lines.length, 1, a.log());
    assert.deepEqual(
      [JSON.parse(lines[0]).level, JSON.parse(lines[0]).reason],
      ["warn", b.reason],
    );
  } finally {
    await a.stop();
  }
});

Deno.test("huge pages: a bad --huge-pages value stops the agent with a clear message", async () => {
  await assert.rejects(
    () => startLocalAgent(["--ram", "4M", "--huge-pages", "maybe"]),
    /--huge-pages expects on, off, auto, got 'maybe'/,
  );
  await assert.rejects(
    () => startAgent(["--ram", "4M"], [], undefined, { FERRY_HUGE_PAGES: "yes" }),
    /ferry: --huge-pages expects on, off, auto, got 'yes'/,
  );
});
