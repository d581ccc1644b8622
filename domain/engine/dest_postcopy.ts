/**
 * The destination's postcopy pieces that talk on the return path: asking for the pages a
 * blocked vCPU waits on (the seed's postcopy fault thread, emulated), and the recovery
 * handshake on a resumed stream (received bitmaps asked for, keepalive PINGs, then
 * POSTCOPY_RESUME answered with RESUME_ACK), and the pause that waits for a recovery.
 *
 * @module
 */
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import type { Channel } from "../ports.ts";
import type { MigrationStatus } from "../state_machine.ts";
import type { PostcopyFault, VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { FrameType } from "../wire/frames.ts";
import { FrameReader } from "../wire/frame_reader.ts";
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
import type { StreamStates } from "./dest_stream_state.ts";
import { failureKind } from "./failure.ts";
import type { MainLink } from "./main_link.ts";
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

/**
 * POSTCOPY_LISTEN: refused without POSTCOPY_ADVISE and a return path; `postcopy-active`, pages
 * placed for a running guest, the vCPU checking the received map; returns the fault loop.
 * (Wrapped: an awaited promise of a promise would wait for the loop itself.)
 */
export async function listen(
  link: MainLink,
  f: FaultRequests,
): Promise<{ faults: Promise<void> }> {
  if (!f.ram.advised || !f.rp()) {
    throw new WireError("migration stream: postcopy listen without advise and return path");
  }
  if (!await link.transition("active", "postcopy-active")) {
    throw new WireError("incoming migration was stopped");
  }
  f.ram.place("postcopy");
  f.vcpu.setPostcopy(true);
  return { faults: requestFaults(f) };
}

/** Asks for each page a blocked vCPU waits on, until the run is over. */
export async function requestFaults(f: FaultRequests): Promise<void> {
  const { guest, vcpu, ram } = f;
  const layout = guest.layout;
  let seq = vcpu.nextFault(-1)?.seq ?? 0;
  // The run's end wakes the wait of the moment through one reaction on `ended` for the whole
  // loop (racing `ended` itself each turn left a reaction on it per turn until the run ended).
  let wake: (() => void) | null = null;
  f.ended.then(() => wake?.());
  while (!f.done()) {
    const fault = await new Promise<PostcopyFault | null>((resolve) => {
      wake = () => resolve(null);
      vcpu.waitFaultAsync(seq, 100).then(resolve);
    });
    wake = null;
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
 * runs `resume` (the status change) and answers RESUME_ACK. Anything else is refused by
 * `stream` (in state `recovery`).
 */
export async function recoveryHandshake(
  reader: FrameReader,
  stream: StreamStates,
  rp: ReturnPath,
  ram: RamLoader,
  guest: SharedGuest,
  resume: () => Promise<void>,
): Promise<void> {
  for (;;) {
    const f = await reader.next();
    stream.accept(f.type);
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

/** What a paused postcopy's recovery uses of its incoming run. */
export interface RecoveringRun {
  link: MainLink;
  guest: SharedGuest;
  ram: RamLoader;
  /** The loader's stream state (a recovery's stream starts in `recovery`). */
  stream: StreamStates;
  /** Resolves with the channel of a migrate-recover once one is accepted. */
  awaitRecovery(): Promise<Channel>;
  /** Stops watching and closes the current stream (before postcopy-paused). */
  drop(): void;
  /** The status says postcopy-paused: the return path takes no more messages. */
  paused(): void;
  /** Makes `accepted` the run's stream: returns it watched, with a new return path. */
  adopt(accepted: Channel): { channel: Channel; rp: ReturnPath };
}

/**
 * postcopy-paused until migrate-recover brings a channel; then the recovery handshake on it
 * (a recovery channel that breaks pauses again). Resolves with the resumed stream's reader.
 */
export async function pauseAndRecover(why: unknown, run: RecoveringRun): Promise<FrameReader> {
  const { link } = run;
  link.post({
    t: "error",
    message: `postcopy paused: ${why instanceof Error ? why.message : String(why)}`,
  });
  let from: MigrationStatus = "postcopy-active";
  for (;;) {
    run.drop();
    if (!await link.transition(from, "postcopy-paused")) {
      throw new WireError("incoming migration was stopped");
    }
    run.paused();
    let channel = await run.awaitRecovery();
    if (!await link.transition("postcopy-paused", "postcopy-recover")) {
      throw new WireError("incoming migration was stopped");
    }
    try {
      const adopted = run.adopt(channel);
      channel = adopted.channel;
      const reader = new FrameReader(channel);
      await reader.readStreamHeader();
      run.stream.headerRead(true);
      await recoveryHandshake(reader, run.stream, adopted.rp, run.ram, run.guest, async () => {
        if (!await link.transition("postcopy-recover", "postcopy-active")) {
          throw new WireError("incoming migration was stopped");
        }
      });
      return reader;
    } catch (e) {
      if (failureKind(e) !== "link") throw e;
      channel.close();
      from = "postcopy-recover";
    }
  }
}
