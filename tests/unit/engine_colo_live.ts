/**
 * Issue 21 item 7's pause: a COLO checkpoint sends most of its pages while the primary's guest
 * still runs (colo_phase.ts, live passes), and only those it dirties meanwhile with it stopped.
 * Whatever went when, the checkpoint must be the primary's RAM at the moment it stopped: here a
 * real primary (a running `random` vCPU) checkpoints into a real secondary whose guest never
 * executes, so its RAM after each checkpoint is exactly what the checkpoints made it; when the
 * secondary's VMSTATE_LOADED reaches the primary (still stopped) the two RAMs must be equal.
 */
import assert from "node:assert/strict";
import { Machine } from "../../adapters/memory/machine.ts";
import { initControl } from "../../adapters/memory/vcpu_control.ts";
import { resolveWorkload } from "../../adapters/memory/workload_spec.ts";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { ColoControl } from "../../domain/engine/dest_colo.ts";
import { runDestination } from "../../domain/engine/dest_run.ts";
import { PointOfNoReturn } from "../../domain/engine/no_return.ts";
import { SourceControl } from "../../domain/engine/source_control.ts";
import { runSource } from "../../domain/engine/source_run.ts";
import { createStats } from "../../domain/engine/stats.ts";
import { DEFAULT_CAPABILITIES, DEFAULT_PARAMETERS, liveParameters } from "../../domain/options.ts";
import type { Channel } from "../../domain/ports.ts";
import { ColoMessage, encodeColoReply } from "../../domain/wire/colo.ts";
import { fakeMain } from "../helpers/engine_pair.ts";
import { parkedGuest } from "../helpers/colo_secondary.ts";

const MiB = 1 << 20;
const CHECKPOINTS = 10;

/** Whether `needle` occurs in `hay`. */
function contains(hay: Uint8Array, needle: Uint8Array): boolean {
  outer: for (let i = 0; i + needle.length <= hay.length; i++) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return true;
  }
  return false;
}

/** The first page at which two RAM blocks differ, or -1. */
function firstDiff(a: ArrayBufferLike, b: ArrayBufferLike): number {
  const x = new Uint32Array(a), y = new Uint32Array(b);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return Math.floor((i * 4) / 4096);
  return -1;
}

Deno.test("colo checkpoint: the secondary gets the primary's RAM as it stopped, though most pages went while its guest ran", async () => {
  const blocks = [{ name: "pc.ram", size: 64 * MiB }];
  const src = await Machine.create({
    blocks,
    fill: "random",
    // Pages at random, about a quarter of RAM between checkpoints and as many during a live
    // pass, written almost without pause: what it writes after the last live pass's sync, as
    // it stops, is mostly not among the pages already marked.
    workload: { kind: "random", rate: 200_000, hot: 1 },
    startPaused: false,
    incoming: false,
  });
  try {
    const dst = parkedGuest(1, blocks);
    initControl(
      dst,
      resolveWorkload({ kind: "idle" }, 64 * MiB, [1, 2, 3, 4]),
      "inmigrate",
      64 * MiB,
    );
    const control = new SourceControl();
    // The main thread's part: the guest's output records go to the checkpoints.
    src.guestOutput.tap = (r, bytes) => control.onColoRecords?.([{ ...r, bytes }]);
    const loaded = encodeColoReply(ColoMessage.VMSTATE_LOADED);
    const checked: number[] = [];
    const wrong: string[] = [];
    let tail = new Uint8Array(0);
    const watch = (ch: Channel): Channel => ({
      async read(p) {
        const n = await ch.read(p);
        if (n === null) return n;
        // What came lately (the primary reads a message's header and body apart).
        tail = new Uint8Array([...tail, ...p.subarray(0, n)]).slice(-64);
        // The secondary applied a checkpoint; the primary reads it before its guest runs again.
        if (contains(tail, loaded)) {
          tail = new Uint8Array(0);
          assert.equal(src.runstate, "colo", "the primary is stopped until it reads this");
          const at = firstDiff(src.shared.ram[0], dst.ram[0]);
          if (at >= 0) wrong.push(`checkpoint ${checked.length + 1}: page ${at} differs`);
          checked.push(src.vcpu.registers()["pages-written"]);
          if (checked.length === CHECKPOINTS) control.lostHeartbeat = true;
        }
        return n;
      },
      write: (p) => ch.write(p),
      closeWrite: () => ch.closeWrite(),
      close: () => ch.close(),
    });
    const [a, b] = memoryChannelPair(1 << 20);
    const s = fakeMain("source");
    const d = fakeMain("destination");
    const dest = runDestination({
      guest: dst,
      stats: createStats(),
      link: d.link,
      autostart: true,
      colo: new ColoControl(new Int32Array([1])),
      awaitRecovery: () => new Promise(() => {}),
      onChannel: () => {},
    }, b);
    await runSource({
      guest: src.shared,
      stats: createStats(),
      link: s.link,
      params: {
        ...liveParameters(DEFAULT_PARAMETERS),
        "max-bandwidth": 0,
        "x-checkpoint-delay": 20,
      },
      caps: { ...DEFAULT_CAPABILITIES, "x-colo": true, "return-path": true },
      control,
      uri: "memory:",
      connect: () => Promise.resolve(watch(a)),
      onWriter: () => {},
      point: new PointOfNoReturn(),
    });
    await dest;
    assert.deepEqual(wrong, []);
    assert.equal(checked.length, CHECKPOINTS);
    assert.ok(checked.at(-1)! > checked[0], "the guest ran between checkpoints");
    assert.ok(s.seen.includes("colo"), s.seen.join(" "));
  } finally {
    await src.dispose();
  }
});
