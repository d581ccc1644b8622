/**
 * Issue 21, COLO without processes: the checkpoint frames' codec (both directions, each side's
 * messages only), and the secondary's side (dest_colo.ts) over an in-memory channel — a whole
 * checkpoint is applied (the cached pages that either side dirtied since the last one reach
 * RAM, this guest's own writes overwritten from the cache), a checkpoint cut halfway is not
 * (RAM and the guest as they were; EOF: the guest runs on alone), and the primary's EXIT stops
 * the guest. With an arbiter (--colo-arbiter) the primary's death holds the guest until the
 * verdict: won runs on, lost stops; lost with the link up ends it without an EXIT.
 */
import assert from "node:assert/strict";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { percentile } from "../../domain/engine/colo_link.ts";
import { STAT } from "../../domain/engine/stats.ts";
import {
  COLO_BODY,
  COLO_OUTPUT_BODY,
  ColoExitCode,
  ColoMessage,
  decodeColoFrame,
  decodeColoOutput,
  decodeColoReply,
  encodeColoFrame,
  encodeColoOutput,
  encodeColoRecords,
  encodeColoReply,
  encodePageRun,
  FRAME_HEADER_SIZE,
  OUTPUT_DIGEST_BYTES,
  RP_COLO,
  RP_COLO_OUTPUT,
  WireError,
} from "../../domain/wire/mod.ts";
import { secondary } from "../helpers/colo_secondary.ts";

Deno.test("colo frames: the primary's and the secondary's messages round-trip; each side's only", () => {
  const f = encodeColoFrame(ColoMessage.VMSTATE_SIZE, 2 ** 40 + 3);
  assert.equal(f.length, FRAME_HEADER_SIZE + COLO_BODY);
  assert.deepEqual(decodeColoFrame(f.subarray(FRAME_HEADER_SIZE)), {
    msg: ColoMessage.VMSTATE_SIZE,
    value: 2 ** 40 + 3,
  });
  const r = encodeColoReply(ColoMessage.VMSTATE_LOADED);
  assert.equal((r[0] << 8) | r[1], RP_COLO);
  assert.deepEqual(decodeColoReply(r.subarray(4)), { msg: ColoMessage.VMSTATE_LOADED, value: 0 });
  // A secondary's message in a primary's frame (and the other way round) is refused.
  assert.throws(
    () => decodeColoFrame(encodeColoReply(ColoMessage.CHECKPOINT_REPLY).subarray(4)),
    (e) => e instanceof WireError && /CHECKPOINT_REPLY is not sent by the primary/.test(e.message),
  );
  assert.throws(
    () => decodeColoReply(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST).subarray(5)),
    /CHECKPOINT_REQUEST is not sent by the secondary/,
  );
  assert.throws(() => decodeColoFrame(new Uint8Array(11)), /11 bytes, expected 12/);
  const unknown = new Uint8Array(COLO_BODY);
  unknown[3] = 42;
  assert.throws(() => decodeColoFrame(unknown), /COLO message 42/);
  assert.throws(() => encodeColoFrame(ColoMessage.CHECKPOINT_READY), RangeError);
  assert.equal(percentile([1, 2, 3, 4], 0.5), 2);
  assert.equal(percentile([1, 2, 3, 4], 0.99), 4);
});

Deno.test("colo secondary: a whole checkpoint overwrites what either side dirtied; a cut one is not applied", async () => {
  const s = await secondary();
  const running = s.colo.run();
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
  // The secondary's guest writes pages 3 and 4 (dirty log) between checkpoints.
  s.ram.fill(7, 3 * PAGE_SIZE, 5 * PAGE_SIZE);
  s.dirty[3] = s.dirty[4] = 1;
  await s.primary.write(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST));
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_REPLY);
  assert.equal(s.vcpu.runstate, "colo", "the secondary stops for the checkpoint");
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SEND));
  // The primary dirtied pages 4 and 9 since the last checkpoint.
  await s.primary.write(encodePageRun(0, 4, PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(2)));
  await s.primary.write(encodePageRun(0, 9, PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(2)));
  assert.equal(s.ram[9 * PAGE_SIZE], 1, "pages wait in the cache");
  await s.primary.write(encodeColoRecords(1, []));
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SIZE, s.state.length));
  await s.primary.write(s.state);
  assert.equal(await s.reply(), ColoMessage.VMSTATE_RECEIVED);
  assert.equal(await s.reply(), ColoMessage.VMSTATE_LOADED, JSON.stringify(s.messages));
  assert.equal(s.vcpu.runstate, "running");
  assert.deepEqual(
    [0, 3, 4, 9].map((p) => s.ram[p * PAGE_SIZE]),
    [1, 1, 2, 2],
    "page 3: the secondary's own write undone from the cache; 4 and 9: the primary's",
  );
  assert.equal(s.stats[STAT.coloCheckpoints], 1);

  // The next checkpoint is cut halfway: nothing of it reaches RAM, and the guest runs on.
  s.ram.fill(8, 5 * PAGE_SIZE, 6 * PAGE_SIZE);
  s.dirty[5] = 1;
  await s.primary.write(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST));
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_REPLY);
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SEND));
  await s.primary.write(encodePageRun(0, 10, PAGE_SIZE, new Uint8Array(PAGE_SIZE).fill(3)));
  await s.primary.write(
    encodeColoRecords(2, [{ seq: 1, stream: "stdout", bytes: new Uint8Array(1) }]),
  );
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SIZE, s.state.length));
  await s.primary.write(s.state.subarray(0, 20));
  s.primary.close(); // EOF: the primary's process died
  await running;
  assert.deepEqual([5, 10].map((p) => s.ram[p * PAGE_SIZE]), [8, 1], "RAM as it was");
  assert.equal(s.vcpu.runstate, "running", "the secondary runs on alone");
  assert.equal(s.stats[STAT.coloCheckpoints], 1);
  assert.deepEqual(s.messages.filter((m) => m.t === "colo"), [
    { t: "colo", what: "enter", mode: "secondary" },
    { t: "colo", what: "records", next: 1, gen: 1, records: [] },
    { t: "colo", what: "exit", reason: "error" },
  ], "the cut checkpoint's records are not applied either");
  assert.deepEqual(s.transitions, ["colo->completed"]);
});

Deno.test("colo secondary: the primary's EXIT (its lost-heartbeat) stops the guest here", async () => {
  const s = await secondary();
  const running = s.colo.run();
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
  await s.primary.write(encodeColoFrame(ColoMessage.EXIT, ColoExitCode.REQUEST));
  await running;
  assert.equal(s.vcpu.runstate, "paused");
  assert.deepEqual(s.messages.at(-1), { t: "colo", what: "exit", reason: "request" });
  assert.deepEqual(s.transitions, ["colo->completed"]);
  s.primary.close();
});

Deno.test("colo output: the secondary's record round-trips; a bad length or seq is refused", () => {
  const digest = Uint8Array.from({ length: OUTPUT_DIGEST_BYTES }, (_, i) => i * 7);
  const m = encodeColoOutput(2 ** 40 + 1, digest);
  assert.equal(m.length, 4 + COLO_OUTPUT_BODY);
  assert.equal((m[0] << 8) | m[1], RP_COLO_OUTPUT);
  assert.equal((m[2] << 8) | m[3], 40);
  assert.deepEqual(decodeColoOutput(m.subarray(4)), { seq: 2 ** 40 + 1, digest });
  assert.throws(
    () => decodeColoOutput(m.subarray(4, 43)),
    /output record of 39 bytes, expected 40/,
  );
  const zero = m.slice(4);
  zero.fill(0, 0, 8);
  assert.throws(
    () => decodeColoOutput(zero),
    (e) => e instanceof WireError && /seq 0 out/.test(e.message),
  );
  assert.throws(() => encodeColoOutput(0, digest), RangeError);
  assert.throws(() => encodeColoOutput(1, digest.subarray(1)), RangeError);
});

Deno.test("colo secondary with an arbiter: the primary's death holds until the verdict; won runs on", async () => {
  const s = await secondary(1, true);
  const running = s.colo.run();
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
  s.primary.close(); // EOF: proof enough without an arbiter, not with one
  await waitUntil(() => s.messages.some((m) => m.t === "colo" && m.what === "hold"));
  assert.equal(s.vcpu.runstate, "colo", "held: the guest stopped");
  assert.deepEqual(s.transitions, [], "still in COLO");
  s.control.requestLostHeartbeat("won");
  await running;
  assert.equal(s.vcpu.runstate, "running");
  assert.deepEqual(s.messages.at(-1), { t: "colo", what: "exit", reason: "error" });
  assert.deepEqual(s.transitions, ["colo->completed"]);
});

Deno.test("colo secondary with an arbiter: lost stops the guest and ends the link without an EXIT", async () => {
  const s = await secondary(1, true);
  const running = s.colo.run();
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
  s.control.requestLostHeartbeat("lost"); // the peer won, or this side's lease lapsed
  await running;
  assert.equal(s.vcpu.runstate, "paused", "fenced: it never runs on");
  assert.deepEqual(s.messages.at(-1), { t: "colo", what: "exit", reason: "error" });
  assert.deepEqual(s.transitions, ["colo->completed"]);
  await assert.rejects(s.reply(), /the secondary closed/, "no EXIT: the connection just ends");
  s.primary.close();
});

/** Waits (event-loop turns, bounded) until `cond` holds. */
async function waitUntil(cond: () => boolean): Promise<void> {
  for (let i = 0; i < 2000 && !cond(); i++) await new Promise((r) => setTimeout(r, 1));
  assert.ok(cond(), "the condition to hold");
}
