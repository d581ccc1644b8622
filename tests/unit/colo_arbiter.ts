/**
 * Issue 21 item 4, the arbiter's pure parts (domain/colo_arbiter.ts) against an etcd gateway
 * in memory (tests/helpers/fake_etcd.ts) through the real JSON client (adapters/etcd/
 * gateway.ts): `--colo-arbiter` parsed, the decision table (one winner of two claims; the
 * other fenced), the lease bookkeeping on a clock the test moves (renewals move the lapse
 * deadline; a lapse fences at once: in COLO a "lost" verdict, after a win a fence; a lease etcd
 * dropped lapses at once), errors that are clear and bounded (down, silent, etcd's own), and
 * what a way out of COLO does to the lease; and the arbiter in the agent's COLO status (the data
 * path's reports drive it, its verdict goes to the side in COLO, `GET /colo` shows it).
 */
import assert from "node:assert/strict";
import { EtcdError, EtcdGateway } from "../../adapters/etcd/gateway.ts";
import {
  ColoArbiter,
  DEFAULT_ARBITER_KEY,
  parseArbiter,
  requestTimeoutMs,
} from "../../domain/colo_arbiter.ts";
import { ColoState } from "../../domain/colo_state.ts";
import { EventBus } from "../../domain/event_bus.ts";
import type { FerryEventMap } from "../../domain/events.ts";
import { FakeEtcd } from "../helpers/fake_etcd.ts";

const SPEC = { url: "http://etcd.test:2379", key: "pair/1", ttlS: 5 };

/** An arbiter on `etcd` that records the verdicts and fences it is given. */
function arbiter(etcd: FakeEtcd, who: string) {
  const said: string[] = [];
  const a = new ColoArbiter(
    SPEC,
    new EtcdGateway(SPEC.url, 200, etcd.fetch),
    { verdict: (v) => said.push(v), fence: () => said.push("fence") },
    who,
    () => etcd.now,
  );
  return { a, said };
}

Deno.test("colo arbiter: --colo-arbiter parses etcd:URL with key= and ttl=, and refuses the rest", () => {
  assert.deepEqual(parseArbiter("etcd:http://127.0.0.1:2379"), {
    url: "http://127.0.0.1:2379",
    key: DEFAULT_ARBITER_KEY,
    ttlS: 5,
  });
  assert.deepEqual(parseArbiter("etcd:https://e:2379,key=shop/colo,ttl=3"), {
    url: "https://e:2379",
    key: "shop/colo",
    ttlS: 3,
  });
  assert.throws(() => parseArbiter("zookeeper:http://z:2181"), /expects etcd:http/);
  assert.throws(() => parseArbiter("etcd:127.0.0.1:2379"), /expects etcd:http/);
  assert.throws(() => parseArbiter("etcd:http://e:2379,ttl=1"), /ttl expects seconds in 2\.\.3600/);
  assert.throws(() => parseArbiter("etcd:http://e:2379,lease=3"), /unknown part 'lease=3'/);
  assert.equal(requestTimeoutMs({ ...SPEC, ttlS: 2 }), 500);
  assert.equal(requestTimeoutMs({ ...SPEC, ttlS: 60 }), 2000);
});

Deno.test("colo arbiter: of two sides that claim the key, one wins and the other loses", async () => {
  const etcd = new FakeEtcd();
  const p = arbiter(etcd, "primary");
  const s = arbiter(etcd, "secondary");
  try {
    assert.equal(await p.a.acquire(), true);
    assert.equal(await s.a.acquire(), true);
    assert.notEqual(p.a.status().lease, s.a.status().lease);
    const [vp, vs] = await Promise.all([s.a.claim(), p.a.claim()]);
    assert.deepEqual([vp, vs].sort(), ["lost", "won"]);
    const winner = vp === "won" ? s : p;
    assert.equal(etcd.value(SPEC.key), vp === "won" ? "secondary" : "primary");
    assert.equal(await winner.a.claim(), "won", "a claim repeated by the holder is a win again");
    assert.deepEqual([p.said, s.said], [[], []], "claim() decides; peerLost() delivers");
  } finally {
    await p.a.close();
    await s.a.close();
  }
  assert.equal(etcd.value(SPEC.key), undefined, "closing revoked the leases, and the key went");
});

Deno.test("colo arbiter: renewals move the deadline; a lapse fences at once (lost in COLO, fence after a win)", async () => {
  const etcd = new FakeEtcd();
  const { a, said } = arbiter(etcd, "primary");
  try {
    a.enter(); // COLO began: a lease is asked for
    await a.acquire(); // the bookkeeping under test, without waiting for enter's own
    etcd.now = 3000;
    await a.renew(); // sent at 3000 with TTL 5: lapses at 8000
    etcd.mode = "down";
    etcd.now = 5000;
    await a.renew();
    assert.match(a.status().error!, /etcd http:\/\/etcd\.test:2379: lease keep-alive: .*refused/);
    assert.equal(a.checkLapse(), false, "not yet: the renewal at 3000 holds until 8000");
    etcd.now = 7999;
    assert.equal(a.checkLapse(), false);
    assert.equal(a.status().state, "leased");
    etcd.now = 8000;
    assert.equal(a.checkLapse(), true);
    assert.equal(a.status().state, "fenced");
    assert.match(a.status().error!, /lapsed: not renewed within 5 s/);
    assert.deepEqual(said, ["lost"], "in COLO: leave it, stopped");
    etcd.mode = "up";
    assert.equal(await a.claim(), "lost", "a side whose lease lapsed never wins");
    assert.deepEqual(said, ["lost"], "once");
  } finally {
    await a.close();
  }
  // After a win: the lease lapsing stops the guest instead.
  const w = arbiter(etcd, "secondary");
  try {
    w.a.enter();
    await w.a.acquire();
    const lost = w.a.peerLost();
    await lost;
    assert.equal(w.a.status().state, "won");
    w.a.left(); // COLO ended: the winner keeps its lease
    assert.equal(w.a.status().state, "won");
    assert.notEqual(w.a.status().lease, null);
    etcd.mode = "down";
    etcd.now += 5000;
    assert.equal(w.a.checkLapse(), true);
    assert.deepEqual(w.said, ["won", "fence"]);
  } finally {
    await w.a.close();
  }
});

Deno.test("colo arbiter: a lease etcd dropped lapses at once; a claim with it loses", async () => {
  const etcd = new FakeEtcd();
  const { a, said } = arbiter(etcd, "primary");
  try {
    await a.acquire();
    a.enter(); // a new session: the lease above is revoked, a new one asked for
    assert.equal(a.status().state, "leased");
    await a.acquire();
    etcd.leases.clear(); // etcd lost it (restored from an old snapshot, say)
    await a.renew();
    assert.equal(a.status().state, "fenced");
    assert.match(a.status().error!, /etcd dropped lease \d+/);
    assert.deepEqual(said, ["lost"]);
  } finally {
    await a.close();
  }
  const b = arbiter(etcd, "secondary");
  try {
    b.a.enter();
    await b.a.acquire();
    etcd.leases.clear();
    assert.equal(await b.a.claim(), "lost", "etcd: requested lease not found");
    assert.equal(b.a.status().state, "fenced");
  } finally {
    await b.a.close();
  }
});

Deno.test("colo arbiter: an etcd that is down or silent gives a clear error within the deadline", async () => {
  const etcd = new FakeEtcd();
  const gw = new EtcdGateway("http://etcd.test:2379/", 50, etcd.fetch);
  etcd.mode = "hang";
  const t0 = performance.now();
  await assert.rejects(
    gw.grant(5),
    (e) =>
      e instanceof EtcdError &&
      e.message === "etcd http://etcd.test:2379: lease grant: no answer within 50 ms",
  );
  assert.ok(performance.now() - t0 < 5000, "bounded by the request deadline");
  etcd.mode = "down";
  await assert.rejects(gw.keepalive("1"), /lease keep-alive: connection refused/);
  etcd.mode = "up";
  await gw.revoke("12"); // a lease that is gone already: fine (close after a lapse)
  const { a } = arbiter(etcd, "primary");
  etcd.mode = "down";
  assert.equal(await a.claim(), null, "unreachable: no verdict, claim again");
  assert.match(a.status().error!, /lease grant: connection refused/);
  await a.close();
});

Deno.test("colo arbiter: peerLost claims until etcd answers, then delivers the verdict once", async () => {
  const etcd = new FakeEtcd();
  const p = arbiter(etcd, "primary");
  const s = arbiter(etcd, "secondary");
  try {
    for (const x of [p, s]) {
      x.a.enter();
      await x.a.acquire();
    }
    assert.equal(await s.a.claim(), "won");
    etcd.mode = "down";
    const lost = p.a.peerLost();
    assert.equal(p.a.status().state, "claiming");
    etcd.mode = "up"; // the retry, 500 ms on, reaches etcd
    await lost;
    assert.deepEqual(p.said, ["lost"]);
    assert.equal(p.a.status().state, "lost");
    p.a.left(); // a loser lets its lease go
    assert.equal(p.a.status().lease, null);
    // A side whose peer came back before a verdict stops claiming.
    const q = arbiter(etcd, "other");
    q.a.enter();
    await q.a.acquire();
    etcd.mode = "down";
    const qLost = q.a.peerLost();
    q.a.peerBack();
    etcd.mode = "up";
    await qLost;
    assert.equal(q.a.status().state, "leased");
    assert.deepEqual(q.said, []);
    // Lost, back, lost again before etcd answers: one claim loop, one verdict.
    etcd.mode = "down";
    const again = [q.a.peerLost()];
    q.a.peerBack();
    again.push(q.a.peerLost());
    etcd.mode = "up";
    await Promise.all(again);
    assert.deepEqual(q.said, ["lost"], "the secondary holds the key");
    await q.a.close();
  } finally {
    await p.a.close();
    await s.a.close();
  }
});

Deno.test("colo arbiter in the COLO status: enter leases, a hold claims, the verdict goes to the side in COLO", async () => {
  const etcd = new FakeEtcd();
  const events = new EventBus<FerryEventMap>();
  const sub = events.subscribe();
  const colo = new ColoState(events);
  const delivered: unknown[] = [];
  colo.route((mode, verdict) => {
    delivered.push([mode, verdict]);
    return true;
  });
  const gateway = new EtcdGateway(SPEC.url, 200, etcd.fetch);
  colo.arbitrate(
    new ColoArbiter(SPEC, gateway, { verdict: (v) => colo.verdict(v), fence: () => {} }),
  );
  try {
    assert.equal(colo.arbitrated, true);
    colo.report({ t: "colo", what: "enter", mode: "secondary" });
    await until("a lease", () => colo.status()["x-arbiter"]!.lease !== null);
    assert.equal(colo.status()["x-arbiter"]!.state, "leased");
    colo.report({ t: "colo", what: "hold" }); // the primary went silent (or died)
    assert.equal(colo.status().reason, "processing");
    await until("the verdict", () => delivered.length > 0);
    assert.deepEqual(delivered, [["secondary", "won"]]);
    assert.equal(etcd.value(SPEC.key), "ferry");
    colo.report({ t: "colo", what: "exit", reason: "error" }); // the Worker ran on alone
    const { "x-arbiter": arbiter, ...status } = colo.status();
    assert.deepEqual(status, { mode: "none", "last-mode": "secondary", reason: "error" });
    assert.deepEqual(arbiter, { state: "won", key: SPEC.key, lease: arbiter!.lease, error: null });
    const exit = await sub.next();
    assert.deepEqual([exit?.event, exit?.data], ["COLO_EXIT", {
      mode: "secondary",
      reason: "error",
    }]);
  } finally {
    sub.close();
    await colo.close();
  }
  assert.equal(etcd.value(SPEC.key), undefined, "the agent closed: its lease and the key went");
});

/** Waits (event-loop turns, bounded) until `cond` holds. */
async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), `timed out waiting for ${what}`);
}
