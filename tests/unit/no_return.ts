/**
 * Issue 18, one point of no return, without sockets: runSource and runDestination over an
 * in-memory pair with a return path whose messages (the destination's SHUT above all) are
 * held back for a random while, and a cancel fired at a random moment, as the main thread's
 * migrate_cancel does (claim the point, cancelling, shut the writer). Many times: exactly one
 * guest runs afterwards — never two, never none — and a refused cancel means the
 * destination runs it.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import type { ChannelWriter } from "../../adapters/channels/channel_writer.ts";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { runDestination } from "../../domain/engine/dest_run.ts";
import { PointOfNoReturn } from "../../domain/engine/no_return.ts";
import { SourceControl } from "../../domain/engine/source_control.ts";
import { runSource } from "../../domain/engine/source_run.ts";
import { createStats } from "../../domain/engine/stats.ts";
import { DEFAULT_CAPABILITIES, DEFAULT_PARAMETERS, liveParameters } from "../../domain/options.ts";
import type { Channel } from "../../domain/ports.ts";
import { isSetupOrActive } from "../../domain/state_machine.ts";
import { fakeMain } from "../helpers/engine_pair.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

/**
 * The source's end of the pair: its reads (the return path) held until `gate` resolves, and
 * `onWritten` told the stream's length after each write.
 */
class HeldReturnPath implements Channel {
  #written = 0;
  constructor(
    readonly inner: Channel,
    readonly gate: Promise<void>,
    readonly onWritten: (n: number) => void,
  ) {}
  async read(p: Uint8Array): Promise<number | null> {
    await this.gate;
    return this.inner.read(p);
  }
  async write(p: Uint8Array): Promise<number> {
    const n = await this.inner.write(p);
    this.#written += n;
    this.onWritten(this.#written);
    return n;
  }
  closeWrite(): Promise<void> {
    return this.inner.closeWrite();
  }
  close(): void {
    this.inner.close();
  }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * One migration with the return path held for `holdMs`, and a cancel `delayMs` after the
 * stream reached `cancelAt` bytes (below 0: at once, inside that write; a stream that never
 * reaches it: after the migration).
 */
async function race(
  src: Machine,
  dst: Machine,
  cancelAt: number,
  delayMs: number,
  holdMs: number,
) {
  const [a, b] = memoryChannelPair(1 << 20);
  const s = fakeMain("source");
  const d = fakeMain("destination");
  const control = new SourceControl();
  const point = new PointOfNoReturn();
  let writer: ChannelWriter | null = null;
  // Outgoing.cancel and the source Worker's "cancel" message, in one.
  let answer: "cancelling" | "refused" | "idle" | null = null;
  const cancel = () => {
    answer = "idle";
    if (!isSetupOrActive(s.sm.status)) return;
    if (!point.claimForCancel()) answer = "refused";
    else if (s.sm.transition(s.sm.status, "cancelling")) {
      answer = "cancelling";
      control.cancelled = true;
      (writer as ChannelWriter | null)?.shutdown();
      control.wake.notify();
    }
  };
  const dest = runDestination({
    guest: dst.shared,
    stats: createStats(),
    link: d.link,
    autostart: true,
    awaitRecovery: () => new Promise(() => {}),
    onChannel: () => {},
  }, b);
  const source = runSource({
    guest: src.shared,
    stats: createStats(),
    link: s.link,
    params: { ...liveParameters(DEFAULT_PARAMETERS), "max-bandwidth": 0 },
    caps: { ...DEFAULT_CAPABILITIES, "return-path": true },
    control,
    uri: "memory:",
    connect: () =>
      Promise.resolve(
        new HeldReturnPath(a, sleep(holdMs), (n) => {
          if (n < cancelAt) return;
          // A delay below 0: at once, inside the write (the data path runs in microtasks).
          if (delayMs < 0 && answer === null) cancel();
          reached.resolve();
        }),
      ),
    onWriter: (w) => (writer = w),
    point,
  });
  const reached = Promise.withResolvers<void>();
  await Promise.race([reached.promise, source]);
  if (delayMs >= 0) {
    await sleep(delayMs);
    cancel();
  }
  await source;
  if (s.sm.status === "cancelling") s.sm.transition("cancelling", "cancelled");
  const ok = await dest;
  return {
    answer: answer ?? "idle",
    ok,
    src: s.sm.status,
    dst: d.sm.status,
    errors: [...s.errors, ...d.errors],
  };
}

Deno.test("no return: a cancel racing the switchover never leaves two guests running, nor none", async () => {
  const blocks = [{ name: "pc.ram", size: 2 << 20 }];
  const src = await Machine.create({
    blocks,
    fill: "random",
    workload: { kind: "idle" },
    startPaused: false,
    incoming: false,
  });
  const dst = await Machine.create({
    blocks,
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  const tally = { cancelled: 0, refused: 0, completed: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(
        // Anywhere in the stream (about 2 MiB of random pages, then the device state).
        fc.integer({ min: 0, max: (2 << 20) + (8 << 10) }),
        fc.integer({ min: -1, max: 3 }),
        fc.integer({ min: 0, max: 20 }),
        async (cancelAt, delayMs, holdMs) => {
          const r = await race(src, dst, cancelAt, delayMs, holdMs);
          const what =
            `cancel ${delayMs} ms after byte ${cancelAt}, return path held ${holdMs} ms: ${
              JSON.stringify(r)
            }`;
          const srcRuns = src.runstate === "running";
          const dstRuns = dst.runstate === "running" && r.dst === "completed";
          assert.equal(Number(srcRuns) + Number(dstRuns), 1, `one guest runs; ${what}`);
          if (r.answer === "refused") {
            // Refused only past the point: the destination has the guest.
            assert.equal(dstRuns, true, what);
            assert.equal(r.src, "completed", what);
            tally.refused++;
          } else if (r.answer === "cancelling") {
            assert.equal(r.src, "cancelled", what);
            assert.equal(srcRuns, true, what);
            tally.cancelled++;
          } else tally.completed++;
          // Back to the start: the source runs, the destination waits (its vCPU parked).
          if (dst.runstate !== "inmigrate") {
            dst.vcpu.setRunstate("paused");
            dst.vcpu.endSnapshot();
            dst.vcpu.setRunstate("inmigrate");
          }
          assert.ok(await dst.vcpu.waitParkedAsync(5000), "the destination's vCPU parks");
          src.vcpu.setRunstate("running");
        },
      ),
      { seed, numRuns: 150 },
    );
  } finally {
    await src.dispose();
    await dst.dispose();
  }
  console.log(`outcomes: ${JSON.stringify(tally)}`);
  assert.ok(tally.refused > 0 && tally.cancelled > 0, "both sides of the point were reached");
});

Deno.test("no return: crossing and a cancel claim are one compare-and-set", () => {
  const p = new PointOfNoReturn();
  assert.equal(p.state, "open");
  assert.equal(p.claimForCancel(), true);
  assert.equal(p.cross(), false, "a cancel that came first wins");
  const q = new PointOfNoReturn();
  assert.equal(q.cross(), true);
  assert.equal(q.claimForCancel(), false, "a crossing that came first wins");
  assert.equal(q.crossed, true);
  q.giveBack();
  assert.equal(q.state, "given-back");
  assert.equal(q.crossed, false);
  // The main thread and a Worker share the cell.
  const shared = new PointOfNoReturn(q.cell);
  assert.equal(shared.state, "given-back");
});
