/**
 * How a COLO run's end is classified (colo_link.ts): a connection that ends is the peer's death
 * only while the peer is proven, i.e. not silent since the last completed checkpoint.
 */
import assert from "node:assert/strict";
import {
  coloEnding,
  ColoWatchdog,
  LostHeartbeat,
  PeerExit,
} from "../../domain/engine/colo_link.ts";
import { ColoExitCode } from "../../domain/wire/colo.ts";
import { WireError } from "../../domain/wire/wire_error.ts";

Deno.test("colo ending: a connection that ends is death when proven, silence when not", () => {
  const ended = new WireError("COLO: the peer closed the connection", "truncated");
  assert.deepEqual(coloEnding(ended), { kind: "dead" });
  assert.deepEqual(coloEnding(ended, null, true), { kind: "silent" });
  assert.deepEqual(coloEnding(new PeerExit(ColoExitCode.REQUEST), null, true), { kind: "fenced" });
  assert.deepEqual(coloEnding(new LostHeartbeat(), "won", true), { kind: "won" });
});

Deno.test("colo watchdog: silence makes the peer unproven until a checkpoint proves it", () => {
  let bytes = 0;
  const seen: string[] = [];
  const w = new ColoWatchdog(0, () => bytes, () => seen.push("hold"), () => seen.push("resume"));
  w.poll(); // the first look: bytes 0 heard now
  w.poll(); // no byte since, and the timeout (0) passed: hold
  assert.deepEqual([w.holding, w.unproven], [true, true]);
  bytes = 10;
  w.poll(); // bytes again: resumed, yet unproven
  assert.deepEqual([w.holding, w.unproven], [false, true]);
  w.proven();
  assert.deepEqual([w.holding, w.unproven, seen], [false, false, ["hold", "resume"]]);
});
