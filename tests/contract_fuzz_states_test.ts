/**
 * Issue 19, item 1: no input gets a 5xx, in every migration state that is cheap to reach.
 * Random requests to every route (contract_fuzz_kit.ts: bodies valid, boundary and wrong;
 * query strings; headers; real and made-up ids) hit a real in-process agent in each of
 * none, failed, active (a peer that never reads), cancelled, completed, an incoming guest
 * waiting, pre-switchover, postcopy-active and postcopy-paused: never a 5xx, every 4xx a problem+json with
 * its detail, and a 4xx changes nothing (parameters, capabilities, the current migration's
 * status, blockers; the runstate, which a running migration moves on its own, is checked in
 * contract_fuzz_test.ts). A request that legitimately moves the agent out of the state (a
 * cancel, a continue) is followed by a fresh set-up of the state.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type InProcess, type Json, openAgent } from "./contract_fixture.ts";
import { checkOne, endpoints, inProcessSender, requestArb } from "./helpers/contract_fuzz_kit.ts";

const RUNS_PER_STATE = 30;
/** Larger than what loopback socket buffers take in (a few MiB each way). */
const STALLING_GUEST = { blocks: [{ name: "pc.ram", size: 32 << 20 }], fill: "random" as const };

/** A state set up on fresh agents: `h` is the one requests go to. */
interface Scene {
  h: InProcess;
  close(): Promise<void>;
}

/**
 * A loopback peer that accepts connections and never reads: a migration of a guest larger
 * than the sockets' buffers stays active, whatever max-bandwidth says.
 */
function deafPeer() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) held.push(c);
  })().catch(() => {});
  return {
    uri: `tcp:127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    async close() {
      try {
        listener.close();
      } catch { /* closed already (its accept loop ended) */ }
      await accepting;
      for (const c of held) c.close();
    },
  };
}

async function waitStatus(h: InProcess, pattern: RegExp): Promise<Json> {
  const end = Date.now() + 20_000;
  for (;;) {
    const info = (await h.request("GET", "/migrations/current")).body;
    if (pattern.test(info.status)) return info;
    if (Date.now() > end) throw new Error(`never ${pattern}: ${JSON.stringify(info)}`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

async function ok(r: Promise<{ status: number; text: string }>, status = 202) {
  const reply = await r;
  assert.equal(reply.status, status, reply.text);
}

/** A source in postcopy-active (and its destination), slow enough to stay there a while. */
async function postcopyPair(): Promise<{ h: InProcess; dst: InProcess }> {
  const dst = await openAgent({
    incoming: "tcp:127.0.0.1:0",
    blocks: [{ name: "pc.ram", size: 64 << 20 }],
  });
  // 64 MiB: background pages go a 64-page chunk per 100 ms window whatever the limit, so
  // postcopy lasts about 25 s, long enough to be caught (and paused) on a busy host.
  const h = await openAgent({ blocks: [{ name: "pc.ram", size: 64 << 20 }], fill: "random" });
  await ok(h.request("PATCH", "/capabilities", { "postcopy-ram": true }), 200);
  await ok(
    h.request("PATCH", "/parameters", {
      "max-bandwidth": 1 << 20,
      "max-postcopy-bandwidth": 1 << 10,
    }),
    200,
  );
  await ok(h.request("POST", "/migrations", { uri: dst.agent.incomingUri }));
  await waitStatus(h, /^active$/);
  await ok(h.request("POST", "/migrations/current/postcopy"));
  await waitStatus(dst, /^postcopy-active$/);
  await waitStatus(h, /^postcopy-active$/);
  return { h, dst };
}

/** Each state: how to set it up, and the status it is recognised by. */
const STATES: { name: string; status: RegExp; setUp: () => Promise<Scene> }[] = [
  {
    name: "none",
    status: /^none$/,
    setUp: async () => {
      const h = await openAgent();
      return { h, close: () => h.agent.close() };
    },
  },
  {
    name: "failed",
    status: /^failed$/,
    setUp: async () => {
      const h = await openAgent();
      await ok(h.request("POST", "/migrations", { uri: "tcp:127.0.0.1:1" }));
      await waitStatus(h, /^failed$/);
      await ok(h.request("POST", "/blockers", { reason: "one to delete" }), 201);
      await ok(h.request("POST", "/blockers", { reason: "another" }), 201);
      return { h, close: () => h.agent.close() };
    },
  },
  {
    name: "active (a peer that never reads)",
    status: /^active$/,
    setUp: async () => {
      const peer = deafPeer();
      const h = await openAgent(STALLING_GUEST);
      await ok(h.request("POST", "/migrations", { uri: peer.uri }));
      await waitStatus(h, /^active$/);
      return {
        h,
        close: async () => {
          await h.agent.close();
          await peer.close();
        },
      };
    },
  },
  {
    name: "cancelled",
    status: /^cancelled$/,
    setUp: async () => {
      const peer = deafPeer();
      const h = await openAgent(STALLING_GUEST);
      await ok(h.request("POST", "/migrations", { uri: peer.uri }));
      await waitStatus(h, /^active$/);
      await ok(h.request("POST", "/migrations/current/cancel"));
      await waitStatus(h, /^cancelled$/);
      await peer.close();
      return { h, close: () => h.agent.close() };
    },
  },
  {
    name: "completed",
    status: /^completed$/,
    setUp: async () => {
      const dst = await openAgent({ incoming: "tcp:127.0.0.1:0" });
      const h = await openAgent();
      await ok(h.request("POST", "/migrations", { uri: dst.agent.incomingUri }));
      await waitStatus(h, /^completed$/);
      await dst.agent.close();
      return { h, close: () => h.agent.close() };
    },
  },
  {
    name: "incoming (waiting)",
    status: /^setup$/,
    setUp: async () => {
      const h = await openAgent({ incoming: "tcp:127.0.0.1:0" });
      return { h, close: () => h.agent.close() };
    },
  },
  {
    name: "pre-switchover",
    status: /^pre-switchover$/,
    setUp: async () => {
      const dst = await openAgent({ incoming: "tcp:127.0.0.1:0" });
      const h = await openAgent();
      await ok(h.request("PATCH", "/capabilities", { "pause-before-switchover": true }), 200);
      await ok(h.request("PATCH", "/parameters", { "max-bandwidth": 0 }), 200);
      await ok(h.request("POST", "/migrations", { uri: dst.agent.incomingUri }));
      await waitStatus(h, /^pre-switchover$/);
      return {
        h,
        close: async () => {
          await h.agent.close();
          await dst.agent.close();
        },
      };
    },
  },
  {
    name: "postcopy-active",
    status: /^postcopy-active$/,
    setUp: async () => {
      const { h, dst } = await postcopyPair();
      return {
        h,
        close: async () => {
          await h.agent.close();
          await dst.agent.close();
        },
      };
    },
  },
  {
    name: "postcopy-paused",
    status: /^postcopy-paused$/,
    setUp: async () => {
      const { h, dst } = await postcopyPair();
      await ok(h.request("POST", "/migrations/current/pause"));
      await waitStatus(h, /^postcopy-paused$/);
      return {
        h,
        close: async () => {
          await h.agent.close();
          await dst.agent.close();
        },
      };
    },
  },
];

/** Waits briefly for `h` to be back in `status` (a resume that failed returns to paused). */
async function settles(h: InProcess, status: RegExp): Promise<boolean> {
  const end = Date.now() + 500;
  for (;;) {
    if (status.test((await h.request("GET", "/migrations/current")).body.status)) return true;
    if (Date.now() > end) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
}

Deno.test("property: in every cheap migration state, random requests to every route never 5xx, and a 4xx changes nothing", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const ops = endpoints();
  const tally = new Map<number, number>();
  let rebuilds = 0;
  for (const [i, state] of STATES.entries()) {
    let scene = await state.setUp();
    try {
      await fc.assert(
        fc.asyncProperty(requestArb(ops), async (s) => {
          const r = await checkOne(inProcessSender(scene.h.app), s, tally, { runstate: false });
          if (r.status < 400 && !await settles(scene.h, state.status)) {
            await scene.close();
            scene = await state.setUp();
            rebuilds++;
          }
        }),
        { seed: seed + i, numRuns: RUNS_PER_STATE },
      );
    } catch (e) {
      const why = e instanceof Error ? `${e.message}\n${e.cause ?? ""}` : String(e);
      throw new Error(`in state ${state.name}: ${why}`);
    } finally {
      await scene.close();
    }
  }
  console.log("statuses", Object.fromEntries(tally), "set-ups again", rebuilds);
  for (const status of [200, 202, 400, 404, 409, 415]) {
    assert.ok(tally.has(status), `no ${status} seen`);
  }
});
