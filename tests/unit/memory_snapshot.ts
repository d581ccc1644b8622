import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { digestGuest } from "../../adapters/memory/digest_worker.ts";
import { allocateGuest, guestMemory, prepareGuest } from "../../adapters/memory/guest_ram.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import { Machine, type MachineOptions } from "../../adapters/memory/machine.ts";
import { stepIncrement, stepRandom } from "../../adapters/memory/workload.ts";
import { resolveWorkload } from "../../adapters/memory/workload_spec.ts";
import type { SnapResidency } from "../helpers/snap_residency.ts";

const MiB = 1 << 20;
/** The machines' first block; a second one of 4 MiB follows, and increment runs across both. */
const PC_RAM = 12 * MiB;

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const deadline = performance.now() + timeoutMs;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

const written = (m: Machine) => m.vcpu.registers()["pages-written"];
const sha = (bytes: Uint8Array) => createHash("sha256").update(bytes).digest("hex");

/** Runs `fn` with machines it creates, disposing every one whatever happens. */
async function withMachines(
  fn: (make: (o: Partial<MachineOptions>) => Promise<Machine>) => Promise<void>,
) {
  const made: Machine[] = [];
  try {
    await fn(async (o) => {
      const m = await Machine.create({
        blocks: [{ name: "pc.ram", size: PC_RAM }, { name: "extra", size: 4 * MiB }],
        fill: "random",
        workload: { kind: "increment", start: 2 * MiB, end: PC_RAM + 3 * MiB },
        startPaused: false,
        incoming: false,
        arrivalDigest: true, // snapshot buffers
        ...o,
      });
      made.push(m);
      return m;
    });
  } finally {
    for (const m of made) await m.dispose();
  }
}

Deno.test("snapshot: snap buffers cost no memory until pages are copied into them", async () => {
  // In a process of its own (see snap_residency.ts): fresh memory from a fresh allocator.
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("../helpers/snap_residency.ts", import.meta.url).pathname],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  const { allocated: r0, touched: r1, copied: r2, written } = JSON.parse(text) as SnapResidency;
  assert.equal(written, (16 * MiB) / PAGE_SIZE);
  const mb = (n: number) => Math.round(n / MiB);
  console.log(
    `resident MiB (ram/snap): allocated ${mb(r0.ram)}/${mb(r0.snap)}, touched ${mb(r1.ram)}/${
      mb(r1.snap)
    }, after copying 16 MiB ${mb(r2.ram)}/${mb(r2.snap)}`,
  );
  assert.ok(r0.snap < 8 * MiB, `allocating snap makes nothing resident: ${mb(r0.snap)} MiB`);
  assert.ok(r1.ram > 62 * MiB, `touching ram makes it resident: ${mb(r1.ram)} MiB`);
  assert.ok(r1.snap < 8 * MiB, `the snap buffer stays empty: ${mb(r1.snap)} MiB`);
  assert.ok(
    r2.snap >= 16 * MiB && r2.snap < 24 * MiB,
    `copying 16 MiB aside makes 16 MiB of snap resident: ${mb(r2.snap)} MiB`,
  );
});

Deno.test("snapshot: steps save a page into snap before their first write to it, once", () => {
  const guest = allocateGuest([{ name: "a", size: 8 * PAGE_SIZE }, {
    name: "b",
    size: 8 * PAGE_SIZE,
  }]);
  prepareGuest(guest, "random");
  const original = guest.ram.map((b) => new Uint8Array(b).slice());
  const copied = new Uint8Array(guest.snapCopied);
  const mem = { ...guestMemory(guest), snap: guest.snap.map((b) => new Uint8Array(b)) };
  const regs = resolveWorkload(
    { kind: "increment", start: 0, end: 16 * PAGE_SIZE },
    16 * PAGE_SIZE,
    [1, 2, 3, 4],
  );
  stepIncrement(regs, mem, 6);
  assert.deepEqual([...copied.subarray(0, 16)], [1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
  stepIncrement(regs, mem, 40); // boot, then passes: pages 0..5 are written again, not saved again
  assert.equal(copied.subarray(0, 16).indexOf(0), -1);
  guest.layout.forEach((_, i) =>
    assert.deepEqual(mem.snap[i], original[i], `block ${i} saved as it was`)
  );
  assert.notDeepEqual(mem.bytes[0], original[0], "RAM was written");
  const rnd = resolveWorkload({ kind: "random", rate: 1000, hot: 1 }, 16 * PAGE_SIZE, [5, 6, 7, 8]);
  copied.fill(0);
  mem.snap.forEach((s) => s.fill(0));
  const before = guest.ram.map((b) => new Uint8Array(b).slice());
  stepRandom(rnd, mem, 200);
  for (let p = 0; p < 16; p++) {
    const [bi, off] = [p >> 3, (p & 7) * PAGE_SIZE];
    const changed = sha(mem.bytes[bi].subarray(off, off + PAGE_SIZE)) !==
      sha(before[bi].subarray(off, off + PAGE_SIZE));
    if (changed) assert.equal(copied[p], 1, `random wrote page ${p} without saving it`);
    if (copied[p] === 1) {
      assert.deepEqual(
        mem.snap[bi].subarray(off, off + PAGE_SIZE),
        before[bi].subarray(off, off + PAGE_SIZE),
      );
    }
  }
});

Deno.test("snapshot digest: a marked page is hashed from snap, an unmarked one from RAM", () => {
  const guest = allocateGuest([{ name: "a", size: 8 * MiB }, { name: "b", size: 4 * PAGE_SIZE }]);
  prepareGuest(guest, "random");
  const before = digestGuest({ guest, mode: "now", check: null });
  assert.deepEqual(digestGuest({ guest, mode: "snapshot", check: null }), before);
  const [ram, snap] = [new Uint8Array(guest.ram[0]), new Uint8Array(guest.snap[0])];
  const off = 1500 * PAGE_SIZE; // in the second 4 MiB chunk
  snap.set(ram.subarray(off, off + PAGE_SIZE), off);
  new Uint8Array(guest.snapCopied)[1500] = 1;
  ram[off + 7]++;
  assert.notDeepEqual(digestGuest({ guest, mode: "now", check: null }), before);
  assert.deepEqual(digestGuest({ guest, mode: "snapshot", check: null }), before);
  new Uint8Array(guest.snapCopied)[1500] = 0;
  assert.notDeepEqual(digestGuest({ guest, mode: "snapshot", check: null }), before);
  assert.deepEqual(digestGuest({ guest, mode: "check", check: null }), { blocks: [] });
});

/** Rounds in which the vCPU must have raced the digest (written pages while it ran). */
const RACED_ROUNDS = 5;
/** Pages the vCPU must write during a digest for the round to count as a race. */
const RACE_PAGES = 5_000;

Deno.test("snapshot digest races a vCPU incrementing at full speed and sees the start state", async () => {
  await withMachines(async (make) => {
    const m = await make({ startPaused: true });
    // Every round must see the start state; on a busy machine the vCPU may get little CPU
    // while a digest runs, so rounds go on until enough of them were real races.
    let raced = 0;
    const deadline = Date.now() + 60_000;
    for (let round = 0; raced < RACED_ROUNDS; round++) {
      assert.ok(Date.now() < deadline, `only ${raced} of ${round} rounds raced the vCPU`);
      const { blocks } = await m.digest("now");
      m.vcpu.beginSnapshot();
      assert.ok(m.vcpu.snapshotting);
      m.cont();
      await waitFor("the vCPU runs", () => !m.vcpu.isParked());
      const w0 = written(m);
      const snapshot = digestGuest({ guest: m.shared, mode: "snapshot", check: null });
      const during = written(m) - w0;
      const now = digestGuest({ guest: m.shared, mode: "now", check: null });
      m.vcpu.endSnapshot();
      await m.stop();
      if (during > RACE_PAGES) raced++;
      assert.deepEqual(snapshot.blocks, blocks, `round ${round}: snapshot digest = start state`);
      if (during > 0) {
        assert.notDeepEqual(now.blocks, blocks, "control: hashing live RAM sees the writes");
      }
      assert.equal(m.vcpu.snapshotting, false);
      // Marks left by the vCPU never leak into the next snapshot: beginning one clears them.
      m.vcpu.beginSnapshot();
      assert.equal(
        new Uint8Array(m.shared.snapCopied).indexOf(1),
        -1,
        "a new snapshot starts clean",
      );
      m.vcpu.endSnapshot();
    }
    m.cont();
    await waitFor("the vCPU runs", () => !m.vcpu.isParked());
    assert.throws(() => m.vcpu.beginSnapshot(), /executing/);
    assert.equal(m.vcpu.snapshotting, false);
  });
});

Deno.test("machine: the destination's digest is RAM as it arrived while its guest runs on", async () => {
  await withMachines(async (make) => {
    const src = await make({});
    const dst = await make({ fill: "pattern", workload: { kind: "idle" }, incoming: true });
    await waitFor("source passes", () => src.vcpu.registers().passes >= 2);
    await src.stop();
    src.shared.ram.forEach((buf, i) => new Uint8Array(dst.shared.ram[i]).set(new Uint8Array(buf)));
    dst.vcpu.loadDeviceState(src.vcpu.saveDeviceState());
    const source = await src.digest();
    assert.equal(source["x-taken"], "now");
    // The page the vCPU writes first once it runs (where the source's vCPU stopped): written
    // within a millisecond, long before the digest is done and the snapshot ends.
    const resumeAt = dst.vcpu.registers().cursor;

    dst.vcpu.beginSnapshot();
    dst.captureArrival();
    dst.cont();
    const w0 = written(dst);
    await waitFor("the destination to run its workload", () => written(dst) - w0 > 10_000, 30_000);
    await dst.stop();
    const arrival = await dst.digest();
    assert.equal(arrival["x-taken"], "arrival");
    assert.deepEqual(arrival.blocks, source.blocks, "digest = the source's");
    assert.equal(dst.vcpu.snapshotting, false, "snapshot ended when its digest was done");
    const now = await dst.digest("now");
    assert.equal(now["x-taken"], "now");
    assert.notDeepEqual(now.blocks, source.blocks, "current memory moved on");
    const check = arrival["x-increment-check"]!;
    assert.ok(check.ok, JSON.stringify(check));
    assert.deepEqual(check, now["x-increment-check"], "the check is on current memory");
    // Blocks: pc.ram, then extra.
    const [blk, off] = resumeAt < PC_RAM ? [0, resumeAt] : [1, resumeAt - PC_RAM];
    assert.deepEqual(
      new Uint8Array(dst.shared.snap[blk], off, PAGE_SIZE),
      new Uint8Array(src.shared.ram[blk], off, PAGE_SIZE),
      "the vCPU saved the first page it wrote as it arrived",
    );
    assert.deepEqual(await dst.digest(), arrival, "the arrival digest is kept");

    dst.clearArrival();
    assert.deepEqual(await dst.digest(), now, "after clearArrival: current memory");
    // Cleared while in progress: the snapshot ends and digest() falls back to current memory.
    dst.vcpu.beginSnapshot();
    dst.captureArrival();
    const pending = dst.digest();
    dst.clearArrival();
    assert.equal(dst.vcpu.snapshotting, false);
    assert.deepEqual(await pending, now);
  });
});
