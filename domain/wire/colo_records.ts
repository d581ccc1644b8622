/**
 * COLO_RECORDS (docs/wire-format.md, "COLO"): the primary's guest output records that the
 * secondary must hold in its own output, because the primary released (or will release) them to
 * clients and the secondary's guest never wrote them, or wrote them differently. Inside a
 * checkpoint (once, before VMSTATE_SIZE) it carries the records of that checkpoint, applied with
 * it; between checkpoints, records the primary released before COLO began. Pure encoder and
 * decoder; every count and length is bounded.
 *
 * Payload: `u64 next` (the primary's guest's next seq: every record's seq is below it),
 * `u32 count`, then per record `u64 seq` (ascending), `u8 stream` (0 stdout, 1 stderr),
 * `u32 length` and the bytes.
 *
 * @module
 */
import {
  COLO_RECORD_HEADER,
  COLO_RECORDS_FIXED,
  FRAME_HEADER_SIZE,
  FrameType,
  MAX_COLO_RECORD_BYTES,
  MAX_COLO_RECORDS,
} from "./frames.ts";
import { putFrameHeader } from "./encode.ts";
import { WireError } from "./wire_error.ts";

/** One output record as COLO_RECORDS carries it. */
export interface ColoRecord {
  seq: number;
  stream: "stdout" | "stderr";
  bytes: Uint8Array;
}

/** A decoded COLO_RECORDS payload. */
export interface ColoRecords {
  /** The primary's guest's next output seq (every record is below it). */
  next: number;
  records: ColoRecord[];
}

const STREAMS = ["stdout", "stderr"] as const;

/**
 * The COLO_RECORDS frame of `records` (ascending seq, each below `next`); RangeError beyond
 * {@link MAX_COLO_RECORDS} records or {@link MAX_COLO_RECORD_BYTES} bytes, or out of order.
 */
export function encodeColoRecords(
  next: number,
  records: readonly ColoRecord[],
): Uint8Array<ArrayBuffer> {
  if (!Number.isSafeInteger(next) || next < 1) throw new RangeError(`bad next seq ${next}`);
  if (records.length > MAX_COLO_RECORDS) {
    throw new RangeError(`${records.length} output records, at most ${MAX_COLO_RECORDS}`);
  }
  let bytes = 0;
  let prev = 0;
  for (const r of records) {
    if (!Number.isSafeInteger(r.seq) || r.seq <= prev || r.seq >= next) {
      throw new RangeError(`output record ${r.seq} out of order (after ${prev}, below ${next})`);
    }
    prev = r.seq;
    bytes += r.bytes.length;
  }
  if (bytes > MAX_COLO_RECORD_BYTES) {
    throw new RangeError(`${bytes} bytes of output records, at most ${MAX_COLO_RECORD_BYTES}`);
  }
  const length = COLO_RECORDS_FIXED + records.length * COLO_RECORD_HEADER + bytes;
  const b = new Uint8Array(FRAME_HEADER_SIZE + length);
  const v = new DataView(b.buffer);
  let at = putFrameHeader(v, 0, FrameType.COLO_RECORDS, length);
  v.setBigUint64(at, BigInt(next));
  v.setUint32(at + 8, records.length);
  at += COLO_RECORDS_FIXED;
  for (const r of records) {
    v.setBigUint64(at, BigInt(r.seq));
    v.setUint8(at + 8, r.stream === "stderr" ? 1 : 0);
    v.setUint32(at + 9, r.bytes.length);
    b.set(r.bytes, at + COLO_RECORD_HEADER);
    at += COLO_RECORD_HEADER + r.bytes.length;
  }
  return b;
}

function safeSeq(v: DataView, at: number, what: string): number {
  const n = v.getBigUint64(at);
  if (n < 1n || n > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new WireError(`COLO_RECORDS: ${what} ${n} out of range`);
  }
  return Number(n);
}

/** A COLO_RECORDS payload; WireError on any count, length, order or stream out of bounds. */
export function decodeColoRecords(payload: Uint8Array): ColoRecords {
  if (payload.length < COLO_RECORDS_FIXED) {
    throw new WireError(
      `COLO_RECORDS: ${payload.length} bytes, at least ${COLO_RECORDS_FIXED} expected`,
    );
  }
  const v = new DataView(payload.buffer, payload.byteOffset, payload.length);
  const next = safeSeq(v, 0, "next seq");
  const count = v.getUint32(8);
  if (count > MAX_COLO_RECORDS) {
    throw new WireError(`COLO_RECORDS: ${count} records, at most ${MAX_COLO_RECORDS}`);
  }
  const records: ColoRecord[] = [];
  let at = COLO_RECORDS_FIXED;
  let bytes = 0;
  let prev = 0;
  for (let i = 0; i < count; i++) {
    if (payload.length - at < COLO_RECORD_HEADER) {
      throw new WireError(`COLO_RECORDS: record ${i + 1} of ${count} cut short`);
    }
    const seq = safeSeq(v, at, "seq");
    if (seq <= prev || seq >= next) {
      throw new WireError(
        `COLO_RECORDS: seq ${seq} out of order (after ${prev}, below next ${next})`,
      );
    }
    prev = seq;
    const stream = STREAMS[v.getUint8(at + 8)];
    if (stream === undefined) {
      throw new WireError(`COLO_RECORDS: stream ${v.getUint8(at + 8)} of seq ${seq}`);
    }
    const length = v.getUint32(at + 9);
    at += COLO_RECORD_HEADER;
    if (length > payload.length - at) {
      throw new WireError(`COLO_RECORDS: seq ${seq} has ${length} bytes, past the frame's end`);
    }
    bytes += length;
    if (bytes > MAX_COLO_RECORD_BYTES) {
      throw new WireError(`COLO_RECORDS: more than ${MAX_COLO_RECORD_BYTES} bytes of records`);
    }
    records.push({ seq, stream, bytes: payload.slice(at, at + length) });
    at += length;
  }
  if (at !== payload.length) {
    throw new WireError(`COLO_RECORDS: ${payload.length - at} bytes after the last record`);
  }
  return { next, records };
}
