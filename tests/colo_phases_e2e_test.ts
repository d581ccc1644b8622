/**
 * Issue 21 item 6, with real agents over real sockets: a cancel and failures in each phase of
 * COLO leave one guest running, never two, never none for good (a side that holds waits, its
 * guest stopped, for `lost-heartbeat`, as QEMU's COLO does). One primary, A, runs an
 * `increment` guest and enters COLO four times, each time with a fresh secondary behind a
 * proxy that freezes or cuts the link at a chosen point:
 * - in COLO between checkpoints a cancel changes nothing (QEMU's migrate_cancel acts only on a
 *   setup or active migration), nor does one on the secondary, and a second migrate is refused
 *   with QEMU's text; checkpoints go on;
 * - the link stalls halfway through a checkpoint's state: both sides hold (guests stopped), a
 *   cancel still changes nothing; lost-heartbeat on the primary runs it alone, and the
 *   secondary, its link then cut, goes on holding (not a second guest);
 * - the secondary's process dies while a checkpoint waits for its reply, and while the
 *   checkpoint's state is half sent: the primary's guest runs on alone;
 * - the primary's process dies with a checkpoint half sent: the secondary discards it and runs
 *   on from the last whole checkpoint, its guest's increment pattern intact;
 * - as COLO begins (E, which took over, now the primary), the secondary's side of the link goes
 *   silent (its SHUT and CHECKPOINT_READY never come): a cancel is refused; the primary, past
 *   its point of no return, fails with its guest stopped, and the secondary runs the guest
 *   alone (by itself, or by lost-heartbeat when it held first).
 */
import assert from "node:assert/strict";
import {
  type AgentProcess,
  startAgent,
  type TestAgent,
  withAgents,
} from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import {
  checkpoints,
  colo,
  enterColo,
  ENV,
  GUEST,
  INCOMING,
  incrementOk,
  info,
  machine,
  progresses,
} from "./helpers/colo_kit.ts";
import { CuttingProxy } from "./helpers/cutting_proxy.ts";
import { waitFor } from "../harness/wait.ts";

/** Bytes into a checkpoint's state where the link is frozen (the state is ~2 MiB). */
const HALFWAY = 100_000;

/** A proxy in front of `s`'s incoming port. */
function proxyTo(s: TestAgent): Promise<CuttingProxy> {
  return CuttingProxy.start({
    hostname: "127.0.0.1",
    port: Number(s.incomingUri!.split(":").at(-1)),
  });
}

/** No periodic checkpoint from now on: the next one starts when the test changes the delay. */
async function quiet(p: TestAgent): Promise<void> {
  const triggered = (await info(p))["x-colo"]["checkpoints-triggered"];
  await p.api("PATCH", "/parameters", { "x-checkpoint-delay": 600_000 });
  await waitFor("the checkpoint the changed delay starts, done", async () => {
    return (await info(p))["x-colo"]["checkpoints-triggered"] > triggered;
  });
}

/**
 * Waits until `p`'s guest has written its whole 2 MiB range again since the last checkpoint,
 * so that the next checkpoint's state is far larger than {@link HALFWAY}.
 */
async function dirtied(p: TestAgent): Promise<void> {
  const before = (await machine(p)).workload["pages-written"];
  await waitFor("the primary's guest to rewrite its range", async () => {
    return (await machine(p)).workload["pages-written"] >= before + 2 * 512;
  });
}

/**
 * Waits until `p`'s guest stopped with its link frozen in a checkpoint: for the checkpoint once
 * its live passes went into the socket buffers, or, had they not fit, held when the secondary's
 * silence outlasts the link timeout (colo_link.ts). Either way the checkpoint is half sent.
 */
async function stopped(p: TestAgent): Promise<void> {
  await waitFor("the primary's guest to stop", async () => (await machine(p)).runstate === "colo");
}

/** Starts a checkpoint at once (a changed delay does). */
async function checkpointNow(p: TestAgent): Promise<void> {
  assert.equal((await p.api("PATCH", "/parameters", { "x-checkpoint-delay": 100 })).status, 200);
}

/**
 * Waits until `x` (the `who`) left COLO by itself, or holds: then lost-heartbeat there (what an
 * operator does) makes it leave. It leaves by itself when the end of the connection came while
 * the peer was proven alive; had the link been silent for the link timeout first (or a host too
 * busy to run the test promptly), it holds instead. `requested`: the test sent lost-heartbeat.
 */
async function leaves(x: TestAgent, who: string, requested = false): Promise<void> {
  const left = await waitFor(`${who} to leave colo or hold`, async () => {
    const c = await colo(x);
    return c.mode === "none" || (!requested && c.reason === "processing") ? c : undefined;
  });
  if (left.mode !== "none") {
    assert.equal((await x.api("POST", "/colo/lost-heartbeat")).status, 202);
    await waitFor(`${who} to leave colo`, async () => (await colo(x)).mode === "none");
  }
}

/** After its secondary died: `p` leaves COLO (see {@link leaves}) and its guest runs alone. */
async function runsAlone(p: TestAgent, who: string, requested = false): Promise<void> {
  await leaves(p, who, requested);
  const c = await colo(p);
  assert.equal(c["last-mode"], "primary");
  assert.match(c.reason, /^(error|request)$/);
  assert.equal((await p.waitStatus(/^(completed|failed)$/)).status, "completed");
  assert.equal((await machine(p)).runstate, "running");
  await progresses(p, `${who} alone`);
}

/** `p` enters COLO with `s` behind a fresh proxy and takes two checkpoints, then goes quiet. */
async function coloThrough(p: TestAgent, s: TestAgent): Promise<CuttingProxy> {
  const proxy = await proxyTo(s);
  try {
    await enterColo(p, s, proxy.uri);
    await checkpoints(p, (await info(p))["x-colo"].checkpoints + 2);
    await quiet(p);
    return proxy;
  } catch (e) {
    await proxy.close();
    throw e;
  }
}

/** `kill -9` of `x`'s process, then the proxy in front of its link cut (its kernel's RST). */
async function killed(x: AgentProcess, proxy: CuttingProxy): Promise<void> {
  x.kill("SIGKILL");
  await x.exited;
  proxy.cut();
}

/** Freezes `proxy` with a checkpoint of `p` half sent, its guest stopped (see {@link stopped}). */
async function freezeHalfway(p: TestAgent, proxy: CuttingProxy): Promise<void> {
  await dirtied(p);
  const frozen = proxy.pauseAt(proxy.bytesUp + HALFWAY);
  await checkpointNow(p);
  await frozen;
  await stopped(p);
}

Deno.test("colo: a cancel and failures in each phase of a checkpoint leave one guest running", async (t) => {
  await withAgents(async (track) => {
    // Processes for those killed; the others live in this one (tests/helpers/local_agent.ts).
    const [[a, b, c, d], [e, f]] = await Promise.all([
      Promise.all([
        [...GUEST, "--fill", "random", "--workload", "increment,rate=5000,start=1M,end=3M"],
        INCOMING,
        INCOMING,
        INCOMING,
      ].map((args) => startAgent(args, [], undefined, ENV).then(track))),
      Promise.all(
        [INCOMING, INCOMING].map((args) => startLocalAgent(args, { env: ENV }).then(track)),
      ),
    ]);

    await t.step(
      "a cancel in colo changes nothing; a stall halfway through a checkpoint holds both sides",
      async () => {
        const proxy = await proxyTo(b);
        try {
          await enterColo(a, b, proxy.uri);
          const before = await checkpoints(a, 2);
          for (const [x, who] of [[a, "primary"], [b, "secondary"]] as const) {
            const r = await x.api("POST", "/migrations/current/cancel");
            assert.equal(r.status, 202, `${who}: ${JSON.stringify(r.body)}`);
            assert.equal(r.body.status, "colo", `a cancel on the ${who} leaves colo as it was`);
          }
          const again = await a.api("POST", "/migrations", { uri: c.incomingUri });
          assert.equal(again.status, 409);
          assert.equal(again.body.detail, "There's a migration process in progress");
          await checkpoints(a, before.checkpoints + 2);
          assert.equal((await colo(a)).mode, "primary");
          assert.equal((await colo(b)).mode, "secondary");
          await progresses(a, "the primary after the cancel");
          await progresses(b, "the secondary after the cancel");

          // The link freezes with a checkpoint's state half sent.
          await quiet(a);
          const applied = (await info(b))["x-colo"].checkpoints;
          await freezeHalfway(a, proxy);
          assert.equal((await a.api("POST", "/migrations/current/cancel")).body.status, "colo");
          for (const [x, who] of [[a, "primary"], [b, "secondary"]] as const) {
            await waitFor(
              `the ${who} to hold`,
              async () => (await colo(x)).reason === "processing",
            );
            assert.equal((await machine(x)).runstate, "colo", `the ${who}'s guest stopped`);
          }
          // The operator picks the primary.
          assert.equal((await a.api("POST", "/colo/lost-heartbeat")).status, 202);
          await runsAlone(a, "the primary", true);
          assert.deepEqual(await colo(a), {
            mode: "none",
            "last-mode": "primary",
            reason: "request",
          });
          // The secondary never heard of it: its link now ends with no word from the primary,
          // which proves nothing, so it holds on; the half checkpoint was never applied.
          proxy.cut();
          await new Promise((r) => setTimeout(r, 500)); // what would make it run, if anything
          assert.equal((await colo(b)).mode, "secondary");
          assert.equal((await machine(b)).runstate, "colo", "one guest runs: the primary's");
          assert.equal((await info(b))["x-colo"].checkpoints, applied);
          await incrementOk(a);
        } finally {
          await proxy.close();
        }
        b.kill("SIGKILL");
      },
    );

    await t.step(
      "the secondary dies while a checkpoint waits for its reply: the primary runs on",
      async () => {
        const proxy = await coloThrough(a, c);
        try {
          proxy.pause("down"); // the secondary's reply (and its pongs) go nowhere
          const up = proxy.bytesUp;
          await checkpointNow(a);
          await waitFor("the checkpoint request to go up", () => proxy.bytesUp > up);
          assert.equal((await machine(a)).runstate, "running", "it runs until the reply");
          await killed(c, proxy);
          await runsAlone(a, "the primary");
          await incrementOk(a);
        } finally {
          await proxy.close();
        }
      },
    );

    await t.step(
      "the secondary dies with a checkpoint's state half sent: the primary's guest runs again",
      async () => {
        const proxy = await coloThrough(a, d);
        try {
          await freezeHalfway(a, proxy);
          await killed(d, proxy);
          await runsAlone(a, "the primary");
          await incrementOk(a);
        } finally {
          await proxy.close();
        }
      },
    );

    await t.step(
      "the primary dies with a checkpoint's state half sent: the secondary runs on from the last whole one",
      async () => {
        const proxy = await coloThrough(a, e);
        try {
          const applied = await waitFor("the secondary to apply the last checkpoint", async () => {
            const [p, s] = [(await info(a))["x-colo"], (await info(e))["x-colo"]];
            return s.checkpoints === p.checkpoints ? s.checkpoints : undefined;
          });
          await freezeHalfway(a, proxy);
          await killed(a, proxy);
          await leaves(e, "the secondary");
          assert.equal((await colo(e))["last-mode"], "secondary");
          assert.equal((await info(e))["x-colo"].checkpoints, applied, "the half one not applied");
          assert.equal((await machine(e)).runstate, "running");
          await progresses(e, "the secondary alone");
          await incrementOk(e);
        } finally {
          await proxy.close();
        }
      },
    );

    await t.step(
      "the secondary's side of the link goes silent as COLO begins: one guest runs, the secondary's",
      async () => {
        const proxy = await proxyTo(f);
        try {
          for (const x of [e, f]) {
            assert.equal((await x.api("PATCH", "/capabilities", { "x-colo": true })).status, 200);
          }
          await e.api("PATCH", "/parameters", { "max-bandwidth": 10 * 1024 ** 3 });
          // The secondary's SHUT and CHECKPOINT_READY, and all it says after, go nowhere.
          proxy.pause("down");
          assert.equal((await e.api("POST", "/migrations", { uri: proxy.uri })).status, 202);
          // The secondary got the whole stream and runs the guest (it cannot before the
          // primary passed its point of no return); the primary waits for its SHUT.
          await waitFor("the secondary to run the guest in COLO", async () => {
            return (await info(f)).status !== "active" &&
              (await machine(f)).runstate !== "inmigrate";
          });
          // A cancel now would leave two guests running: refused, nothing changes (unless the
          // primary, 3 s without a word, already failed: then there is nothing to cancel).
          const cancel = await e.api("POST", "/migrations/current/cancel");
          if (cancel.status === 202) assert.equal(cancel.body.status, "failed");
          else {
            assert.equal(cancel.status, 409, JSON.stringify(cancel.body));
            assert.match(cancel.body.detail, /past its point of no return/);
          }
          const failed = await e.waitStatus(/^(colo|completed|failed)$/);
          assert.equal(failed.status, "failed", JSON.stringify(failed));
          assert.match(failed["error-desc"], /^no answer from the peer for 3 s; past the point/);
          assert.equal((await machine(e)).runstate, "postmigrate", "the secondary may run it");
          // The secondary ran its guest as COLO began. It runs on alone by itself when the
          // primary's hang-up comes first, or holds when its own watchdog spoke first (the
          // primary, waiting for the SHUT, sent nothing).
          await leaves(f, "the secondary");
          assert.equal((await colo(f))["last-mode"], "secondary");
          assert.equal((await machine(f)).runstate, "running");
          assert.equal((await machine(e)).runstate, "postmigrate", "one guest: the secondary's");
          await progresses(f, "the secondary alone");
          await incrementOk(f);
        } finally {
          await proxy.close();
        }
      },
    );
  });
});
