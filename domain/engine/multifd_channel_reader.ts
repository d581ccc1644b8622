/**
 * Reads one destination page channel, from MULTIFD_SETUP on, wherever it runs (the incoming
 * Worker, or a receive Worker of its own): PAGE_RUN straight into guest RAM, ZERO_RUN,
 * RAM_USED, and MULTIFD_SYNC(pass) as a barrier (this channel goes past pass N only once
 * every channel reached it, so no stale page overtakes a newer one), until EOF. What it
 * reached, and that it ended, go to the shared cells (multifd_rx_shared.ts).
 *
 * @module
 */
import { FrameType } from "../wire/frames.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { decodeU32 } from "../wire/postcopy.ts";
import { WireError } from "../wire/wire_error.ts";
import { chCell, chStat, RX_CH, RX_STAT, setCell, waitPass } from "./multifd_rx_shared.ts";
import type { RamLoader } from "./ram_loader.ts";

/** The shared cells a channel reports to. */
export interface ChannelCells {
  ctl: Int32Array;
  stats: Float64Array;
  channels: number;
}

/**
 * Reads channel `id` from `reader` into `ram` until EOF; `counted` runs after each frame
 * (a receive Worker copies its loader's page counts out). Stops quietly when the barrier
 * cannot be reached because the run gave up or another channel failed.
 */
export async function readPageChannel(
  id: number,
  reader: FrameReader,
  ram: RamLoader,
  cells: ChannelCells,
  counted?: () => void,
): Promise<void> {
  const { ctl, stats } = cells;
  const header = new Uint8Array(10);
  let reached = 0;
  for (;;) {
    const f = await reader.next();
    if (f.type === FrameType.PAGE_RUN) {
      await ram.pageRun(reader, f.length, header, true);
    } else if (f.type === FrameType.ZERO_RUN) {
      ram.zeroRun(await reader.readPayload(), true);
    } else if (f.type === FrameType.RAM_USED) {
      // Each channel says a growable block's size before its first page past the old end.
      ram.ramUsed(await reader.readPayload());
    } else if (f.type === FrameType.MULTIFD_SYNC) {
      const pass = decodeU32(await reader.readPayload());
      if (pass !== reached + 1) {
        throw new WireError(`multifd channel ${id}: sync for pass ${pass} after pass ${reached}`);
      }
      reached = pass;
      stats[chStat(id, RX_STAT.BYTES)] = reader.bytesRead;
      counted?.();
      setCell(ctl, chCell(id, RX_CH.REACHED), pass);
      if (!await waitPass(ctl, cells.channels, pass)) return;
    } else if (f.type === FrameType.EOF) {
      stats[chStat(id, RX_STAT.BYTES)] = reader.bytesRead;
      counted?.();
      setCell(ctl, chCell(id, RX_CH.ENDED), 1);
      return;
    } else {
      throw new WireError(`multifd channel ${id}: unexpected frame type 0x${f.type.toString(16)}`);
    }
    stats[chStat(id, RX_STAT.BYTES)] = reader.bytesRead;
    counted?.();
  }
}
