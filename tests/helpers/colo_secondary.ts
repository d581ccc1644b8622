/**
 * A COLO secondary (dest_colo.ts) without processes, for engine tests: a parked guest, its
 * loaders and an in-memory channel whose other end plays the primary.
 *
 * @module
 */
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { allocateGuest, type SharedGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { VcpuControl } from "../../adapters/memory/vcpu_control.ts";
import { F_NEXT_SEQ, PARKED, PRNG } from "../../adapters/memory/vcpu_ctl.ts";
import { ColoControl, DestColo } from "../../domain/engine/dest_colo.ts";
import { ReturnPath } from "../../domain/engine/dest_support.ts";
import { DEVICE_SECTION, DeviceSectionLoader } from "../../domain/engine/device_section.ts";
import type { MainLink } from "../../domain/engine/main_link.ts";
import type { WorkerMessage } from "../../domain/engine/messages.ts";
import { RamLoader } from "../../domain/engine/ram_loader.ts";
import { RamSectionLoader } from "../../domain/engine/ram_section_loader.ts";
import { SectionTable } from "../../domain/engine/section_table.ts";
import { createStats } from "../../domain/engine/stats.ts";
import {
  COLO_BODY,
  decodeColoReply,
  encodeSectionFull,
  encodeStreamHeader,
  FrameReader,
} from "../../domain/wire/mod.ts";

const BLOCKS = [{ name: "pc.ram", size: 16 * PAGE_SIZE }];

/** A guest without a vCPU Worker: its vCPU counts as parked (it never executes). */
export function parkedGuest(nextSeq = 1, blocks = BLOCKS): SharedGuest {
  const guest = allocateGuest(blocks);
  const ctl = new Int32Array(guest.ctl);
  Atomics.store(ctl, PARKED, 1);
  ctl.set([1, 2, 3, 4], PRNG); // a vCPU's PRNG state is never all zero
  new Float64Array(guest.ctl)[F_NEXT_SEQ] = nextSeq; // nor its next output seq (≥ 1)
  return guest;
}

/**
 * A secondary whose first state arrived (RAM filled with 1s), ready for checkpoints; `state` is
 * the device state of a primary whose guest's next output record is `primaryNextSeq`;
 * `arbitrated`: started with `--colo-arbiter`.
 */
export async function secondary(primaryNextSeq = 1, arbitrated = false) {
  const guest = parkedGuest();
  const ram = new Uint8Array(guest.ram[0]);
  ram.fill(1);
  const dirty = new Uint8Array(guest.dirty);
  const vcpu = new VcpuControl(guest);
  const stats = createStats();
  const loader = new RamLoader(guest, stats);
  const ramSection = new RamSectionLoader(loader, stats, 1);
  const device = new DeviceSectionLoader(vcpu);
  const [primary, channel] = memoryChannelPair(1 << 20);
  // The precopy's stream came first (its frames are not this test's).
  const reader = new FrameReader(channel);
  await primary.write(encodeStreamHeader());
  await reader.readStreamHeader();
  const messages: WorkerMessage[] = [];
  const transitions: string[] = [];
  const link = {
    status: "colo",
    post: (m: WorkerMessage) => messages.push(m),
    transition: (from: string, to: string) => {
      transitions.push(`${from}->${to}`);
      return Promise.resolve(true);
    },
  } as unknown as MainLink;
  const control = new ColoControl(undefined, arbitrated);
  const colo = new DestColo({
    guest,
    vcpu,
    link,
    stats,
    reader,
    channel,
    rp: new ReturnPath(channel),
    ram: loader,
    ramSection,
    sections: new SectionTable([ramSection, device]),
    control,
    timeoutMs: 30_000,
    unwatch: () => {},
  });
  colo.prepare();
  vcpu.setRunstate("running");
  /** The device state of the primary's stopped vCPU, as a SECTION_FULL record. */
  const state = encodeSectionFull(
    DEVICE_SECTION,
    new VcpuControl(parkedGuest(primaryNextSeq)).saveDeviceState(),
  );
  /** Reads the secondary's next COLO message. */
  async function reply(): Promise<number> {
    const b = new Uint8Array(4 + COLO_BODY);
    for (let got = 0; got < b.length;) {
      const n = await primary.read(b.subarray(got));
      if (n === null) throw new Error("the secondary closed");
      got += n;
    }
    return decodeColoReply(b.subarray(4)).msg;
  }
  return { ram, dirty, vcpu, stats, primary, colo, control, messages, transitions, state, reply };
}
