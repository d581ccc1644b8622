/**
 * Issue 21, item 3's gap, without processes: the output records a COLO checkpoint releases on
 * the primary reach the secondary with that checkpoint. The primary's book (colo_records.ts)
 * picks what a checkpoint carries; the secondary (dest_colo.ts, over an in-memory channel) hands
 * it to its main thread only once the checkpoint is applied; its output (guest_output.ts) then
 * holds the primary's records in place of its own. The end-to-end proof: a secondary behind the
 * primary at a checkpoint, whose guest never writes the records the checkpoint releases.
 */
import assert from "node:assert/strict";
import { GuestOutput } from "../../adapters/memory/guest_output.ts";
import { makeRecord, OutputLog, type OutputRecord } from "../../adapters/wasm/output_log.ts";
import { encodeGuestState } from "../../adapters/wasm/wasm_device_state.ts";
import {
  allocateWasmBuffers,
  stateViews,
  type WasmShared,
} from "../../adapters/wasm/wasm_shared.ts";
import { wasmNextSeq } from "../../adapters/wasm/wasm_state_cell.ts";
import { loadOutputDigest, outputDigest } from "../../domain/colo_output.ts";
import { ColoRecordBook } from "../../domain/engine/colo_records.ts";
import { OutputCompare } from "../../domain/output_compare.ts";
import {
  ColoMessage,
  type ColoRecord,
  encodeColoFrame,
  encodeColoRecords,
  MAX_COLO_RECORD_BYTES,
  MAX_COLO_RECORDS,
} from "../../domain/wire/mod.ts";
import { secondary } from "../helpers/colo_secondary.ts";

const enc = new TextEncoder();
const bytesOf = (seq: number) => enc.encode(`increment pass ${seq} pages ${seq * 8192}\n`);
const hex = (b: Uint8Array) => Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
await loadOutputDigest();
const digestOf = (b: Uint8Array) => hex(outputDigest(b));
const rec = (seq: number, bytes = bytesOf(seq)): ColoRecord => ({ seq, stream: "stdout", bytes });
const seqs = (rs: readonly { seq: number }[]) => rs.map((r) => r.seq);

Deno.test("colo records book: a checkpoint carries what the secondary did not write equal since the last", () => {
  const book = new ColoRecordBook(4);
  book.secondary(6, digestOf(bytesOf(6)), 0); // the secondary's may come first
  for (let seq = 4; seq <= 8; seq++) {
    book.primary([{ ...rec(seq), digest: digestOf(bytesOf(seq)) }]);
  }
  book.secondary(4, digestOf(bytesOf(4)), 0); // equal: the secondary holds it
  book.secondary(5, digestOf(enc.encode("clock 17\n")), 0); // different: the primary's goes
  assert.equal(book.missing(10), "records 9 to 9 have not come");
  assert.equal(book.missing(9), null);
  assert.deepEqual(seqs(book.take(9)), [5, 7, 8]);
  assert.equal(book.lo, 9);
  // After that checkpoint, a digest of the replaced guest (epoch 0) matches nothing.
  book.primary([{ ...rec(9), digest: digestOf(bytesOf(9)) }]);
  book.secondary(9, digestOf(bytesOf(9)), 0);
  assert.deepEqual(seqs(book.take(10)), [9]);
  book.primary([{ ...rec(10), digest: digestOf(bytesOf(10)) }]);
  book.secondary(10, digestOf(bytesOf(10)), 2); // read after the second VMSTATE_LOADED
  assert.deepEqual(book.take(11), []);
});

Deno.test("colo records book: the backlog and late records go between checkpoints; a gap is named", () => {
  const book = new ColoRecordBook(4);
  book.primary([rec(1), rec(2), rec(3)]); // released before COLO began
  book.primary([{ ...rec(4), digest: "x" }]);
  book.primary([rec(3, enc.encode("late again"))]); // the same seq again: kept once, the later
  assert.deepEqual(book.takeReleased().map((r) => [r.seq, new TextDecoder().decode(r.bytes)]), [
    [1, "increment pass 1 pages 8192\n"],
    [2, "increment pass 2 pages 16384\n"],
    [3, "late again"],
  ]);
  assert.deepEqual(book.takeReleased(), []);
  book.primary([{ ...rec(6), digest: "y" }]); // 5 never came
  assert.match(book.missing(7)!, /output record 6 came where 5 was expected/);
  // A frame's worth at most per takeReleased.
  const many = new ColoRecordBook(MAX_COLO_RECORDS + 10);
  many.primary(Array.from({ length: MAX_COLO_RECORDS + 5 }, (_, i) => rec(i + 1)));
  assert.equal(many.takeReleased().length, MAX_COLO_RECORDS);
  assert.equal(many.takeReleased().length, 5);
});

Deno.test("colo records book: past half a frame a checkpoint is due; past a frame it fails, saying so", () => {
  const book = new ColoRecordBook(1);
  const big = new Uint8Array(MAX_COLO_RECORD_BYTES / 2);
  book.primary([{ ...rec(1, big), digest: "a" }]);
  assert.equal(book.due, true);
  book.primary([{ ...rec(2, big), digest: "b" }, { ...rec(3, new Uint8Array(1)), digest: "c" }]);
  assert.throws(
    () => book.take(4),
    /3 output records \(8388609 bytes\) since the last checkpoint: more than one checkpoint carries/,
  );
});

Deno.test("colo records: a secondary behind the primary at a checkpoint gets every record the primary releases", async () => {
  // The primary: what its clients get (the compare's releases), and its COLO Worker's book.
  // Records 1-3 were released before COLO began; its guest's next record then was 4.
  const got: OutputRecord[] = [1, 2, 3].map((seq) => makeRecord(seq, "stdout", bytesOf(seq)));
  const compare = new OutputCompare<OutputRecord>({ release: (r) => got.push(r), trigger() {} });
  const book = new ColoRecordBook(4);
  book.primary([1, 2, 3].map((seq) => rec(seq)));
  // The secondary: its Worker, whose checkpoints bring the primary's guest at seq 10, and its
  // main thread's output. Its guest is behind: it wrote 4 (equal) and 5 (different) only.
  const s = await secondary(10);
  const out = new GuestOutput();
  const theirs = [rec(4), rec(5, enc.encode("increment pass 5 pages 1\n"))];
  for (const r of theirs) out.take({ ...r, gen: s.vcpu.generation });
  for (let seq = 4; seq <= 9; seq++) {
    const digest = digestOf(bytesOf(seq));
    book.primary([{ ...rec(seq), digest }]);
    compare.primary(seq, digest, makeRecord(seq, "stdout", bytesOf(seq)), 0);
  }
  for (const r of theirs) {
    compare.secondary(r.seq, digestOf(r.bytes), 0);
    book.secondary(r.seq, digestOf(r.bytes), 0);
  }
  assert.deepEqual(seqs(got), [1, 2, 3, 4], "5 differs: held until the checkpoint");
  assert.deepEqual(seqs(out.log.since(0)), [4, 5], "what the secondary holds before it");

  const running = s.colo.run();
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
  await s.primary.write(encodeColoRecords(book.lo, book.takeReleased())); // the backlog
  await s.primary.write(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST));
  assert.equal(await s.reply(), ColoMessage.CHECKPOINT_REPLY);
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SEND));
  assert.equal(book.missing(10), null);
  const carried = book.take(10);
  assert.deepEqual(seqs(carried), [5, 6, 7, 8, 9], "4 was written equal on both sides");
  await s.primary.write(encodeColoRecords(10, carried));
  await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SIZE, s.state.length));
  await s.primary.write(s.state);
  assert.equal(await s.reply(), ColoMessage.VMSTATE_RECEIVED);
  assert.equal(await s.reply(), ColoMessage.VMSTATE_LOADED);
  compare.checkpointed(10, 1); // after VMSTATE_LOADED the primary releases what it held
  assert.deepEqual(seqs(got), [1, 2, 3, 4, 5, 6, 7, 8, 9]);

  // The secondary's main thread takes its Worker's reports; a record its replaced guest wrote
  // is still in flight, then its new guest writes 10.
  for (const m of s.messages) {
    if (m.t === "colo" && m.what === "records") out.adopt(m.records, m.next, m.gen);
  }
  out.take({ seq: 6, stream: "stdout", bytes: enc.encode("stale"), gen: s.vcpu.generation - 1 });
  out.take({ seq: 10, stream: "stdout", bytes: bytesOf(10), gen: s.vcpu.generation });
  // Every record a client got from the primary is on the secondary, equal; it goes on with 10.
  const held = out.log.since(0);
  assert.deepEqual(seqs(held), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
  for (const r of got) assert.deepEqual(held.find((x) => x.seq === r.seq), r, `record ${r.seq}`);
  s.primary.close();
  await running;
});

Deno.test("colo records: the secondary refuses a checkpoint without its records, or with two", async () => {
  for (const frames of [0, 2]) {
    const s = await secondary(1);
    const running = s.colo.run();
    assert.equal(await s.reply(), ColoMessage.CHECKPOINT_READY);
    await s.primary.write(encodeColoFrame(ColoMessage.CHECKPOINT_REQUEST));
    assert.equal(await s.reply(), ColoMessage.CHECKPOINT_REPLY);
    await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SEND));
    for (let i = 0; i < frames; i++) await s.primary.write(encodeColoRecords(1, []));
    await s.primary.write(encodeColoFrame(ColoMessage.VMSTATE_SIZE, s.state.length));
    await running;
    const error = s.messages.find((m) => m.t === "error");
    assert.match(
      (error as { message: string }).message,
      frames === 0 ? /a checkpoint without its output records/ : /two COLO_RECORDS frames/,
    );
    assert.deepEqual(s.transitions, ["colo->failed"]);
    assert.equal(s.messages.some((m) => m.t === "colo" && m.what === "records"), false);
    s.primary.close();
  }
});

Deno.test("colo records: the output log takes the primary's in place of its own; readers get only what is new", () => {
  const log = new OutputLog();
  for (const seq of [2, 3, 7]) log.append(makeRecord(seq, "stdout", enc.encode(`own ${seq}`)));
  const live: number[] = [];
  log.subscribe((r) => live.push(r.seq));
  log.merge([1, 3, 8, 9].map((seq) => makeRecord(seq, "stdout", enc.encode(`primary ${seq}`))));
  assert.deepEqual(log.since(0).map((r) => `${r.seq} ${r.text}`), [
    "1 primary 1",
    "2 own 2",
    "3 primary 3",
    "7 own 7",
    "8 primary 8",
    "9 primary 9",
  ]);
  assert.deepEqual(live, [8, 9], "a reader following the log gets what extends it");
});

Deno.test("colo records: a parked WebAssembly guest's next seq is the one its saved state holds", () => {
  const { state, stdin } = allocateWasmBuffers();
  const w = { state, stdin } as unknown as WasmShared;
  assert.throws(() => wasmNextSeq(w), /holds no output seq/);
  const cell = stateViews(state);
  const bytes = encodeGuestState({
    started: true,
    exited: false,
    exitCode: 0,
    nextSeq: 2 ** 40 + 5,
    monotonicNs: 1e9,
    globals: [{ type: 1, value: 3n }],
    files: [],
    stack: new Uint8Array(40),
  });
  cell.bytes.set(bytes);
  Atomics.store(cell.i32, 1, bytes.length);
  assert.equal(wasmNextSeq(w), 2 ** 40 + 5);
});
