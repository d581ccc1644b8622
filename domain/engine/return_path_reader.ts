/**
 * The source's return-path reader (the seed's source_return_path_thread): reads QEMU-format
 * messages from the destination with the seed's validation and hands them on. A bad or
 * unknown message marks the return path bad; nothing a peer sends can make it allocate
 * more than a local block's bitmap.
 *
 * @module
 */
import { readFull } from "./channel_io.ts";
import type { Channel } from "../ports.ts";
import type { RamBlockLayout } from "../../adapters/memory/layout.ts";
import { decodeRpHeader, decodeRpMessage, RP_HEADER_SIZE, RpType } from "../wire/return_path.ts";
import { RECV_BITMAP_END } from "../wire/postcopy.ts";
import { WireError } from "../wire/wire_error.ts";
import { checkRpReasonLength, decodeRpReason, isRpReason } from "../wire/peer_reason.ts";

/** What the source does with each message. */
export interface ReturnPathHandlers {
  onShut(error: number): void;
  /** The destination's reason for refusing or failing the stream (a Ferry extension). */
  onReason?(text: string): void;
  onPong?(value: number): void;
  /** A page request: flat page range. */
  onRequest(firstPage: number, count: number): void;
  /** A block's received bitmap (1 bit per page, LSB first) during recovery. */
  onReceivedBitmap(block: number, bits: Uint8Array): void;
  onResumeAck(value: number): void;
}

/** Reads exactly n bytes into buf (throws on end of stream). */
async function readExact(ch: Channel, buf: Uint8Array): Promise<void> {
  if (!await readFull(ch, buf)) throw new WireError("RP: return path closed", "truncated");
}

/**
 * Reads messages until SHUT, end of stream or an error (which it throws). Request offsets
 * are checked against `layout`: misaligned or out-of-block requests are errors, as in
 * the seed's migrate_handle_rp_req_pages / ram_save_queue_pages.
 */
export async function readReturnPath(
  ch: Channel,
  layout: readonly RamBlockLayout[],
  pageSize: number,
  h: ReturnPathHandlers,
): Promise<void> {
  const head = new Uint8Array(RP_HEADER_SIZE);
  const data = new Uint8Array(512);
  let lastBlock = -1;
  for (;;) {
    await readExact(ch, head);
    if (isRpReason(head)) {
      const length = (head[2] << 8) | head[3];
      checkRpReasonLength(length);
      await readExact(ch, data.subarray(0, length));
      h.onReason?.(decodeRpReason(data.subarray(0, length)));
      continue;
    }
    const { type, length } = decodeRpHeader(head);
    await readExact(ch, data.subarray(0, length));
    const m = decodeRpMessage(type, data.subarray(0, length));
    switch (m.type) {
      case RpType.SHUT:
        h.onShut(m.error);
        return;
      case RpType.PONG:
        h.onPong?.(m.value);
        break;
      case RpType.REQ_PAGES:
      case RpType.REQ_PAGES_ID: {
        const block = m.type === RpType.REQ_PAGES_ID
          ? layout.findIndex((b) => b.name === m.name)
          : lastBlock;
        if (block < 0) {
          throw new WireError(
            m.type === RpType.REQ_PAGES_ID
              ? `RP: page request for unknown RAM block '${m.name}'`
              : "RP: page request without a block",
          );
        }
        lastBlock = block;
        const blk = layout[block];
        if (m.start % pageSize !== 0 || m.len % pageSize !== 0 || m.len === 0) {
          throw new WireError(
            `RP: Misaligned page request, start: 0x${m.start.toString(16)} len: ${m.len}`,
          );
        }
        if (m.start + m.len > blk.size) {
          throw new WireError(`RP: page request past the end of RAM block '${blk.name}'`);
        }
        h.onRequest(blk.firstPage + m.start / pageSize, m.len / pageSize);
        break;
      }
      case RpType.RECV_BITMAP: {
        const block = layout.findIndex((b) => b.name === m.name);
        if (block < 0) throw new WireError(`RP: invalid block name '${m.name}'`);
        const bytes = Math.ceil(layout[block].pages / 8);
        const size = new Uint8Array(8);
        await readExact(ch, size);
        const announced = new DataView(size.buffer).getBigUint64(0);
        if (announced !== BigInt(bytes)) {
          throw new WireError(
            `RP: received bitmap of ${announced} bytes for '${m.name}', expected ${bytes}`,
          );
        }
        const bits = new Uint8Array(bytes);
        await readExact(ch, bits);
        await readExact(ch, size);
        if (new DataView(size.buffer).getBigUint64(0) !== RECV_BITMAP_END) {
          throw new WireError("RP: received bitmap end marker missing");
        }
        h.onReceivedBitmap(block, bits);
        break;
      }
      case RpType.RESUME_ACK:
        h.onResumeAck(m.value);
        break;
    }
  }
}
