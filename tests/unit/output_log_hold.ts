/**
 * A COLO secondary's output (adapters/wasm/output_log.ts hold / release): while COLO runs only
 * the primary releases output, so the secondary keeps its guest's records (and the primary's
 * that checkpoints carry) without showing them to clients, live or on reconnect; when it runs
 * on alone it shows them, once each, in order, as they are then.
 */
import assert from "node:assert/strict";
import { makeRecord, OutputLog, type OutputRecord } from "../../adapters/wasm/output_log.ts";

const rec = (seq: number, text: string): OutputRecord =>
  makeRecord(seq, "stdout", new TextEncoder().encode(text));

Deno.test("output log: held records reach no client until released, then each once, as merged", () => {
  const log = new OutputLog();
  const live: string[] = [];
  log.subscribe((r) => live.push(`${r.seq}:${r.text}`));
  log.append(rec(1, "before"));
  log.hold();
  log.append(rec(2, "mine"));
  log.append(rec(3, "mine"));
  log.merge([rec(3, "primary's"), rec(4, "primary's")]);
  assert.deepEqual(live, ["1:before"], "nothing shown while held");
  assert.deepEqual(log.shown(0).map((r) => r.seq), [1], "a reconnecting client neither");
  assert.deepEqual(log.since(0).map((r) => r.seq), [1, 2, 3, 4], "all kept");
  log.hold(); // a second hold keeps the first one's mark
  log.release();
  assert.deepEqual(live, ["1:before", "2:mine", "3:primary's", "4:primary's"]);
  log.append(rec(5, "after"));
  log.release(); // nothing held: nothing again
  assert.deepEqual(live.slice(4), ["5:after"]);
  assert.deepEqual(log.shown(3).map((r) => r.text), ["primary's", "after"]);
});
