/**
 * Issue 18, a source data path that dies (its Worker crashes) in each phase, with the
 * migration's main-thread side (Outgoing) in this process and a real destination agent:
 * before the point of no return the source's guest runs on with its memory intact (and a
 * retry completes); past it in precopy the migration fails with the destination running the
 * guest and the source's stopped; past it in postcopy both sides pause, and a resume starts
 * a new data path that completes the migration.
 */
import assert from "node:assert/strict";
import { Machine } from "../adapters/memory/machine.ts";
import { Migration } from "../domain/migration.ts";
import {
  type Capabilities,
  DEFAULT_CAPABILITIES,
  DEFAULT_PARAMETERS,
  type LiveParameters,
  liveParameters,
} from "../domain/options.ts";
import { Outgoing } from "../domain/outgoing.ts";
import { type Json, type TestAgent } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";

const RAM = 32 << 20;

function sourceGuest(): Promise<Machine> {
  return Machine.create({
    blocks: [{ name: "pc.ram", size: RAM }],
    fill: "random",
    workload: { kind: "idle" },
    startPaused: false,
    incoming: false,
  });
}

function destination(): Promise<TestAgent> {
  return startLocalAgent(["--ram", "32M", "--incoming", "tcp:127.0.0.1:0"]);
}

/** An outgoing migration to `uri` whose source Worker crashes as `crash` says (none: ""). */
function migrate(
  guest: Machine,
  uri: string,
  crash: string,
  caps: Partial<Capabilities> = {},
  params: Partial<LiveParameters> = {},
): Outgoing {
  const m = new Migration("source", uri, () => {});
  m.machine.transition("none", "setup");
  const worker = crash
    ? new URL(`./helpers/crashing_source_worker.ts?${crash}`, import.meta.url)
    : undefined;
  return new Outgoing(
    m,
    guest.shared,
    { ...liveParameters(DEFAULT_PARAMETERS), ...params },
    { ...DEFAULT_CAPABILITIES, ...caps },
    undefined,
    () => {},
    { sourceWorker: worker },
  );
}

async function until(what: string, f: () => boolean | Promise<boolean>, ms = 30_000) {
  const end = Date.now() + ms;
  while (!await f()) {
    if (Date.now() > end) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

async function status(a: TestAgent): Promise<Json> {
  return (await a.api<Json>("GET", "/migrations/current")).body;
}

async function runstate(a: TestAgent): Promise<string> {
  return (await a.api<Json>("GET", "/machine")).body.runstate;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("worker crash before the point of no return: the source's guest runs on intact; a retry completes", async () => {
  const guest = await sourceGuest();
  const dst = await destination();
  try {
    const before = (await guest.digest("now")).blocks;
    const out = migrate(guest, dst.incomingUri!, "at=active&bytes=4194304", {}, {
      "max-bandwidth": 8 << 20,
    });
    await out.done;
    assert.equal(out.migration.status, "failed");
    assert.match(out.migration.error ?? "", /^data path crashed: .*injected crash/);
    assert.equal(guest.runstate, "running");
    assert.deepEqual((await guest.digest("now")).blocks, before, "the guest's memory is intact");
    await until("the destination to fail", async () => (await status(dst)).status === "failed");
    assert.equal(await runstate(dst), "inmigrate");
    // The same destination takes the next attempt.
    const retry = migrate(guest, dst.incomingUri!, "");
    await retry.done;
    assert.equal(retry.migration.status, "completed", retry.migration.error ?? "");
    await until(
      "the destination to complete",
      async () => (await status(dst)).status === "completed",
    );
    assert.deepEqual(
      (await dst.api<Json>("GET", "/machine/digest?at=now")).body.blocks,
      before,
    );
  } finally {
    await dst.stop();
    await guest.dispose();
  }
});

Deno.test("worker crash past the point in precopy: failed, the destination runs the guest, the source's stays stopped", async () => {
  const guest = await sourceGuest();
  const dst = await destination();
  const port = Number(dst.incomingUri!.split(":").pop());
  const proxy = await CuttingProxy.start({ hostname: "127.0.0.1", port });
  try {
    proxy.pause("down"); // the destination's SHUT never reaches the source
    const out = migrate(guest, proxy.uri, "at=crossed&after=300", { "return-path": true });
    await out.done;
    assert.equal(out.migration.status, "failed");
    assert.match(out.migration.error ?? "", /past the point of no return/);
    assert.equal(guest.runstate, "postmigrate");
    await until(
      "the destination to complete",
      async () => (await status(dst)).status === "completed",
    );
    assert.equal(await runstate(dst), "running");
  } finally {
    await proxy.close();
    await dst.stop();
    await guest.dispose();
  }
});

Deno.test("worker crash past the point in postcopy: both sides pause; recover and resume complete it", async () => {
  const guest = await sourceGuest();
  const dst = await destination();
  try {
    const before = (await guest.digest("now")).blocks;
    assert.equal((await dst.api("PATCH", "/capabilities", { "postcopy-ram": true })).status, 200);
    const out = migrate(guest, dst.incomingUri!, "at=crossed&after=300", { "postcopy-ram": true }, {
      "max-bandwidth": 16 << 20,
      "max-postcopy-bandwidth": 4 << 20,
    });
    await until("active", () => out.migration.status === "active");
    out.command({ t: "postcopy" });
    await until("the source to pause", () => out.migration.status === "postcopy-paused");
    assert.match(out.migration.error ?? "", /data path crashed: .*injected crash; postcopy paused/);
    assert.notEqual(guest.runstate, "running");
    await until(
      "the destination to pause",
      async () => (await status(dst)).status === "postcopy-paused",
    );
    const uri = `tcp:127.0.0.1:${freePort()}`;
    const r = await dst.api("POST", "/migrations/incoming/recover", { uri });
    assert.equal(r.status, 202, JSON.stringify(r.body));
    out.setParams({ ...liveParameters(DEFAULT_PARAMETERS), "max-postcopy-bandwidth": 0 });
    out.command({ t: "resume", uri });
    await out.done;
    assert.equal(out.migration.status, "completed", out.migration.error ?? "");
    await until(
      "the destination to complete",
      async () => (await status(dst)).status === "completed",
    );
    assert.equal(await runstate(dst), "running");
    assert.equal(guest.runstate, "postmigrate");
    assert.deepEqual((await dst.api<Json>("GET", "/machine/digest?at=now")).body.blocks, before);
  } finally {
    await dst.stop();
    await guest.dispose();
  }
});
