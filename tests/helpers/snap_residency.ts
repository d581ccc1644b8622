/**
 * Run as a script (`deno run -A`): allocates a 64 MiB guest with snapshot buffers, touches its
 * RAM, copies 16 MiB aside under a snapshot, and prints the resident bytes of RAM and snap
 * after each step as one JSON line. A process of its own: in the test runner, an allocation
 * may come back from memory another module freed (resident already), which says nothing
 * about what the guest's own buffers cost.
 *
 * @module
 */
import { allocateGuest, guestMemory, prepareGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { initControl } from "../../adapters/memory/vcpu_control.ts";
import { stepIncrement } from "../../adapters/memory/workload.ts";
import { resolveWorkload } from "../../adapters/memory/workload_spec.ts";
import { residentBytes } from "./resident.ts";

/** Resident bytes of the guest's RAM and snap buffers. */
export interface Residency {
  ram: number;
  snap: number;
}

/** The three readings: allocated, RAM touched, 16 MiB copied aside; and pages the step wrote. */
export interface SnapResidency {
  allocated: Residency;
  touched: Residency;
  copied: Residency;
  written: number;
}

function measure(): SnapResidency {
  const MiB = 1 << 20;
  const size = 64 * MiB;
  const guest = allocateGuest([{ name: "pc.ram", size }]);
  const [ram, snap] = [guest.ram[0], guest.snap[0]];
  const allocated = { ram: residentBytes(ram), snap: residentBytes(snap) };
  prepareGuest(guest, "touch");
  const touched = { ram: residentBytes(ram), snap: residentBytes(snap) };
  const control = initControl(
    guest,
    resolveWorkload({ kind: "idle" }, size, [1, 2, 3, 4]),
    "paused",
    size,
  );
  control.beginSnapshot();
  const mem = { ...guestMemory(guest), snap: guest.snap.map((b) => new Uint8Array(b)) };
  const regs = resolveWorkload({ kind: "increment", start: 0, end: 16 * MiB }, size, [1, 2, 3, 4]);
  const written = stepIncrement(regs, mem, (16 * MiB) / PAGE_SIZE);
  const copied = { ram: residentBytes(ram), snap: residentBytes(snap) };
  control.endSnapshot();
  if (new Uint8Array(guest.snapCopied).indexOf(1) !== -1) throw new Error("marks left set");
  return { allocated, touched, copied, written };
}

if (import.meta.main) console.log(JSON.stringify(measure()));
