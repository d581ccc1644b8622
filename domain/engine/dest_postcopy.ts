/**
 * The destination's postcopy pieces that talk on the return path: asking for the pages a
 * blocked vCPU waits on (the seed's postcopy fault thread, emulated), and the recovery
 * handshake on a resumed stream (received bitmaps asked for, keepalive PINGs, then
 * POSTCOPY_RESUME answered with RESUME_ACK).
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { FrameType } from "../wire/frames.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { decodeRecvBitmapRequest, decodeU32 } from "../wire/postcopy.ts";
import {
  encodeRpPong,
  encodeRpRecvBitmap,
  encodeRpReqPagesId,
  encodeRpResumeAck,
  RESUME_ACK_VALUE,
} from "../wire/return_path.ts";
import { WireError } from "../wire/wire_error.ts";
import type { ReturnPath } from "./dest_support.ts";
import type { RamLoader } from "./ram_loader.ts";

/** What the fault requests need. */
export interface FaultRequests {
  guest: SharedGuest;
  vcpu: VcpuControl;
  ram: RamLoader;
  /** The current return path (a new one after a recovery), or null. */
  rp(): ReturnPath | null;
  /** True once the run is over. */
  done(): boolean;
  /** Resolves when the run is over (wakes the loop at once). */
  ended: Promise<unknown>;
}

/** Asks for each page a blocked vCPU waits on, until the run is over. */
export async function requestFaults(f: FaultRequests): Promise<void> {
  const { guest, vcpu, ram } = f;
  const layout = guest.layout;
  let seq = vcpu.nextFault(-1)?.seq ?? 0;
  while (!f.done()) {
    const fault = await Promise.race([vcpu.waitFaultAsync(seq, 100), f.ended.then(() => null)]);
    if (f.done()) break;
    if (fault) seq = fault.seq;
    const page = fault?.page ?? vcpu.nextFault(-1)?.page ?? -1;
    const rp = f.rp();
    if (page < 0 || ram.isReceived(page) || !rp || rp.broken) continue;
    if (!fault && vcpu.isParked()) continue; // nothing new: re-ask only for a blocked vCPU
    let b = 0;
    while (page >= layout[b].firstPage + layout[b].pages) b++;
    const start = (page - layout[b].firstPage) * guest.pageSize;
    await rp.send(encodeRpReqPagesId(start, guest.pageSize, layout[b].name));
    if (!fault) await new Promise((r) => setTimeout(r, 100)); // pace re-requests
  }
}

/**
 * The recovery handshake on a resumed stream whose header `reader` has read: answers each
 * RECV_BITMAP with the block's received bitmap and each PING with a PONG; at POSTCOPY_RESUME
 * runs `resume` (the status change) and answers RESUME_ACK. Anything else is refused.
 */
export async function recoveryHandshake(
  reader: FrameReader,
  rp: ReturnPath,
  ram: RamLoader,
  guest: SharedGuest,
  resume: () => Promise<void>,
): Promise<void> {
  for (;;) {
    const f = await reader.next();
    if (f.type === FrameType.RECV_BITMAP) {
      const name = decodeRecvBitmapRequest(await reader.readPayload());
      const b = guest.layout.findIndex((x) => x.name === name);
      if (b < 0) throw new WireError(`RECV_BITMAP for unknown RAM block '${name}'`);
      await rp.send(encodeRpRecvBitmap(name));
      await rp.send(ram.receivedBitmap(b));
    } else if (f.type === FrameType.PING) {
      // A keepalive while the handshake is under way.
      await rp.send(encodeRpPong(decodeU32(await reader.readPayload())));
    } else if (f.type === FrameType.POSTCOPY_RESUME) {
      await resume();
      await rp.send(encodeRpResumeAck(RESUME_ACK_VALUE));
      return;
    } else {
      throw new WireError(`recovery: unexpected frame type 0x${f.type.toString(16)}`);
    }
  }
}
