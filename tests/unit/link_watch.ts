/**
 * Issue 18, a dead peer noticed, the rules themselves (engine/link_watch.ts) with a clock the
 * test moves: a write that makes no progress, a read that waits while nothing arrives on any
 * channel (the destination's rule), an unanswered PING (the source's rule) — each gives the
 * link up after the timeout with a typed LinkError that every pending operation then fails
 * with; progress on any channel keeps it alive; nothing is expected while nothing waits.
 */
import assert from "node:assert/strict";
import { failureKind, LinkError } from "../../domain/engine/failure.ts";
import { GuardedChannel, keepaliveInterval, LinkWatch } from "../../domain/engine/link_watch.ts";
import { connectWithin } from "../../domain/engine/source_link.ts";
import type { Channel } from "../../domain/ports.ts";

/** A channel whose reads and writes complete when the test says. */
class ManualChannel implements Channel {
  reads: ((n: number | null) => void)[] = [];
  writes: ((n: number) => void)[] = [];
  closed = false;
  #fail: ((e: Error) => void)[] = [];
  read(): Promise<number | null> {
    return new Promise((resolve, reject) => {
      this.reads.push(resolve);
      this.#fail.push(reject);
    });
  }
  write(p: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.writes.push(() => resolve(p.length));
      this.#fail.push(reject);
    });
  }
  closeWrite(): Promise<void> {
    return Promise.resolve();
  }
  close(): void {
    this.closed = true;
    for (const f of this.#fail) f(new Error("closed underneath"));
  }
}

function clock() {
  let t = 1000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

const flush = () => new Promise((r) => setTimeout(r, 0));

Deno.test("link watch: a write stuck for the timeout gives the link up; pending operations fail typed", async () => {
  const c = clock();
  const watch = new LinkWatch({ timeoutMs: 3000, idleReads: false, now: c.now, timer: false });
  const raw = new ManualChannel();
  const ch = watch.guard(raw);
  const w = ch.write(new Uint8Array(10));
  c.advance(2000);
  raw.writes.shift()!(10); // progress
  assert.equal(await w, 10);
  const stuck = ch.write(new Uint8Array(10));
  c.advance(2999);
  assert.equal(watch.check(), null, "not yet");
  c.advance(2);
  const e = watch.check();
  assert.ok(e instanceof LinkError && e.code === "stalled");
  assert.match(e.message, /nothing could be sent for 3 s/);
  await assert.rejects(stuck, (x: unknown) => x === e && failureKind(x) === "link");
  assert.equal(raw.closed, true);
  await assert.rejects(ch.read(new Uint8Array(1)), (x: unknown) => x === e);
});

Deno.test("link watch: a destination's read waiting while nothing arrives on any channel times out", async () => {
  const c = clock();
  let told: LinkError | null = null;
  const watch = new LinkWatch({
    timeoutMs: 3000,
    idleReads: true,
    now: c.now,
    timer: false,
    onExpire: (e) => (told = e),
  });
  const main = new ManualChannel();
  const page = new ManualChannel();
  const m = watch.guard(main);
  const p = watch.guard(page);
  // Nothing waits: nothing is expected (a paused migration, a busy loader).
  c.advance(10_000);
  assert.equal(watch.check(), null);
  const waiting = m.read(new Uint8Array(8));
  // Bytes on the page channel keep the peer alive while the main channel waits.
  for (let i = 0; i < 4; i++) {
    const r = p.read(new Uint8Array(8));
    c.advance(2000);
    page.reads.shift()!(8);
    await r;
    assert.equal(watch.check(), null, `round ${i}`);
  }
  c.advance(3001);
  const e = watch.check();
  assert.ok(e instanceof LinkError && e.code === "timeout");
  assert.match(e.message, /nothing received from the peer for 3 s/);
  assert.equal(told, e);
  await assert.rejects(waiting, (x: unknown) => x === e);
});

Deno.test("link watch: a PING left unanswered for the timeout gives the link up; any answer clears it", async () => {
  const c = clock();
  const watch = new LinkWatch({ timeoutMs: 3000, idleReads: false, now: c.now, timer: false });
  const raw = new ManualChannel();
  const ch: GuardedChannel = watch.guard(raw);
  const rp = ch.read(new Uint8Array(8)); // the return path always waits: no rule by itself
  c.advance(60_000);
  assert.equal(watch.check(), null);
  watch.expectReply();
  c.advance(2500);
  raw.reads.shift()!(4); // the PONG
  await rp;
  c.advance(2500);
  assert.equal(watch.check(), null, "answered");
  watch.expectReply();
  c.advance(3001);
  const e = watch.check();
  assert.ok(e instanceof LinkError && e.code === "timeout");
  assert.match(e.message, /no answer from the peer for 3 s/);
  assert.equal(keepaliveInterval(30_000), 5000, "libvirt's keepalive: every 5 s, 30 s in all");
});

Deno.test("link watch: a connection that does not come within the timeout fails typed", async () => {
  const never = () => new Promise<Channel>(() => {});
  await assert.rejects(
    connectWithin(never, 50),
    (e: unknown) => e instanceof LinkError && e.code === "connect" && failureKind(e) === "link",
  );
  // One that comes late is closed, not leaked.
  const late = new ManualChannel();
  await assert.rejects(
    connectWithin(() => new Promise((r) => setTimeout(() => r(late), 100)), 20),
    LinkError,
  );
  await new Promise((r) => setTimeout(r, 150));
  await flush();
  assert.equal(late.closed, true);
});

Deno.test("link watch: a guarded call whose channel throws at once rejects; nothing stays pending", async () => {
  const boom = new Error("bad resource");
  const throwing: Channel = {
    read: () => {
      throw boom;
    },
    write: () => {
      throw boom;
    },
    closeWrite: () => Promise.resolve(),
    close: () => {},
  };
  const g = new GuardedChannel(throwing, () => 0);
  let reading: Promise<number | null> | null = null;
  let writing: Promise<number> | null = null;
  assert.doesNotThrow(() => reading = g.read(new Uint8Array(4)));
  assert.doesNotThrow(() => writing = g.write(new Uint8Array(4)));
  await assert.rejects(reading!, (e) => e === boom);
  await assert.rejects(writing!, (e) => e === boom);
  assert.equal(g.pendingReads, 0);
  assert.equal(g.pendingWrites, 0);
});
