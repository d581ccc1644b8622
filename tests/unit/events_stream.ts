/**
 * Issue 3, item 6: the event stream through the real app — Last-Event-ID replay gets
 * exactly the missed events, heartbeats keep idle streams alive, many subscribers each get
 * every event in order, and a subscriber that never reads is dropped without slowing the
 * publisher or the others.
 */
import assert from "node:assert/strict";
import { withAgent } from "../contract_fixture.ts";
import { sseItems } from "../helpers/sse.ts";
import type { EventBus } from "../../domain/event_bus.ts";
import type { Agent } from "../../domain/agent.ts";

/** The agent's bus without its event catalogue: these tests publish made-up events. */
function anyEvents(agent: Agent): EventBus {
  return agent.events as unknown as EventBus;
}

interface Received {
  id: number;
  event: string;
  data: unknown;
}

/** Reads an SSE response body, recording events and comment lines. */
function reader(r: Response) {
  const events: Received[] = [];
  const comments: string[] = [];
  let ended = false;
  const blocks = sseItems(r.body!).getReader();
  const done = (async () => {
    try {
      for (;;) {
        const { value, done } = await blocks.read();
        if (done) break;
        if (value.kind === "comment") comments.push(value.text);
        else {events.push({
            id: Number(value.id),
            event: value.event,
            data: JSON.parse(value.data),
          });}
      }
    } catch { /* cancelled */ }
    ended = true;
  })();
  return {
    events,
    comments,
    get ended() {
      return ended;
    },
    async until(pred: () => boolean, timeoutMs = 10_000): Promise<void> {
      const end = Date.now() + timeoutMs;
      while (!pred()) {
        if (Date.now() > end) {
          throw new Error(`timed out with ${events.length} events, ended=${ended}`);
        }
        await new Promise((r) => setTimeout(r, 5));
      }
    },
    async close(): Promise<void> {
      await blocks.cancel().catch(() => {});
      await done;
    },
  };
}

Deno.test("Last-Event-ID: a reconnecting client gets exactly the events it missed, then live ones", async () => {
  await withAgent(async ({ app, agent }) => {
    const first = reader(await app.request("/events"));
    for (let i = 0; i < 3; i++) anyEvents(agent).publish("test", { n: i });
    await first.until(() => first.events.length === 3);
    const lastSeen = first.events[2].id;
    await first.close();
    const missed = [3, 4, 5, 6, 7].map((n) => anyEvents(agent).publish("test", { n }).id);
    const again = reader(
      await app.request("/events", { headers: { "last-event-id": String(lastSeen) } }),
    );
    await again.until(() => again.events.length === 5);
    assert.deepEqual(again.events.map((e) => e.id), missed);
    assert.deepEqual(again.events.map((e) => (e.data as { n: number }).n), [3, 4, 5, 6, 7]);
    const live = anyEvents(agent).publish("test", { n: 8 }).id;
    await again.until(() => again.events.length === 6);
    assert.equal(again.events[5].id, live);
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(again.events.length, 6, "no duplicates");
    await again.close();
    // Without Last-Event-ID a client starts with live events only.
    const fresh = reader(await app.request("/events"));
    const nine = anyEvents(agent).publish("test", { n: 9 });
    await fresh.until(() => fresh.events.length === 1);
    assert.deepEqual(fresh.events[0].data, { n: 9, time: new Date(nine.time).toISOString() });
    await fresh.close();
  });
});

Deno.test("heartbeat: an idle stream gets a comment every heartbeat period", async () => {
  await withAgent(
    async ({ app }) => {
      const r = reader(await app.request("/events"));
      await r.until(() => r.comments.filter((c) => c === "heartbeat").length >= 3, 2000);
      assert.equal(r.events.length, 0);
      await r.close();
    },
    {},
    { heartbeatMs: 40 },
  );
});

Deno.test("many subscribers each get every event, in order", async () => {
  await withAgent(async ({ app, agent }) => {
    const subs = await Promise.all(
      Array.from({ length: 40 }, async () => reader(await app.request("/events"))),
    );
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.events.subscriberCount, 40);
    const ids: number[] = [];
    for (let i = 0; i < 300; i++) ids.push(anyEvents(agent).publish("test", { i }).id);
    for (const s of subs) {
      await s.until(() => s.events.length === 300);
      assert.deepEqual(s.events.map((e) => e.id), ids);
    }
    await Promise.all(subs.map((s) => s.close()));
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.events.subscriberCount, 0, "closed streams unsubscribe");
  });
});

Deno.test("a stalled subscriber is dropped while 10k events are published; the others keep receiving", async () => {
  await withAgent(async ({ app, agent }) => {
    const stalled = await app.request("/events"); // never read
    const readers = [reader(await app.request("/events")), reader(await app.request("/events"))];
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(agent.events.subscriberCount, 3);
    const started = performance.now();
    let publishing = 0;
    for (let i = 0; i < 10_000; i++) {
      const t = performance.now();
      anyEvents(agent).publish("test", { i, pad: "x".repeat(64) });
      publishing += performance.now() - t;
      if (i % 250 === 249) await new Promise((r) => setTimeout(r, 1)); // let readers run
    }
    for (const r of readers) {
      await r.until(() => r.events.length === 10_000, 20_000);
      const { time: _time, ...last } = r.events.slice(-1)[0].data as Record<string, unknown>;
      assert.deepEqual(last, { i: 9999, pad: "x".repeat(64) });
    }
    console.log(
      `published 10k in ${publishing.toFixed(1)} ms of publish time, ${
        (performance.now() - started).toFixed(0)
      } ms total`,
    );
    assert.equal(agent.events.subscriberCount, 2, "the stalled subscriber was dropped");
    // Its stream has ended: reading it now yields what was buffered, then the end.
    const rest = stalled.body!.getReader();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error("the dropped stream never ended")), 5000);
    });
    try {
      while (!(await Promise.race([rest.read(), timeout])).done) { /* drain */ }
    } finally {
      clearTimeout(timer);
    }
    await Promise.all(readers.map((r) => r.close()));
  });
});

Deno.test("a burst reaches a waiting subscriber at once, in order, as exact SSE frames", async () => {
  await withAgent(async ({ app, agent }) => {
    const sub = agent.events.subscribe();
    const waiting = sub.nextAll();
    const a = anyEvents(agent).publish("test", { n: 1 });
    const b = anyEvents(agent).publish("test", { n: 2, s: "two\nlines" });
    assert.deepEqual((await waiting).map((e) => e.id), [a.id, b.id]);
    sub.close();
    assert.deepEqual(await sub.nextAll(), [], "a closed subscription yields nothing");

    const r = await app.request("/events", { headers: { "last-event-id": String(a.id - 1) } });
    const body = r.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = "";
    while (!text.includes(`id: ${b.id}\n\n`)) text += (await body.read()).value ?? "";
    await body.cancel();
    // Each event's data carries its own publication time.
    const at = (e: { time: number }) => new Date(e.time).toISOString();
    assert.equal(
      text,
      `: ferry events\n\nevent: test\ndata: {"n":1,"time":"${at(a)}"}\nid: ${a.id}\n\n` +
        `event: test\ndata: {"n":2,"s":"two\\nlines","time":"${at(b)}"}\nid: ${b.id}\n\n`,
    );
  });
});

Deno.test("a bus with a coalescing window wakes a subscriber once per burst", async () => {
  const { EventBus } = await import("../../domain/event_bus.ts");
  // A window far longer than the 5 ms between the publishes, so a busy host keeps them in one.
  const bus = new EventBus(16, 64, 300);
  const sub = bus.subscribe();
  let woke = 0;
  const waiting = sub.nextAll().then((b) => (woke = performance.now(), b));
  const t0 = performance.now();
  bus.publish("a", 1);
  await new Promise((r) => setTimeout(r, 5));
  bus.publish("b", 2);
  bus.publish("c", 3);
  const batch = await waiting;
  assert.deepEqual(batch.map((e) => e.event), ["a", "b", "c"], "the whole burst, in order");
  assert.ok(woke - t0 >= 295, `woken after ${woke - t0} ms, before the window closed`);
  sub.close();
});
