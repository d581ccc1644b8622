import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { allocateGuest, prepareGuest } from "../../adapters/memory/guest_ram.ts";
import { countMarked, syncDirtyLog } from "../../adapters/memory/dirty_log.ts";
import { Machine, type MachineOptions } from "../../adapters/memory/machine.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import {
  blocktime,
  markReceived,
  markReceivedRange,
  nextFault,
} from "../../adapters/memory/vcpu_control.ts";
import {
  ctlViews,
  F_NEXT_SEQ,
  OUT_PENDING,
  OUT_PENDING_MAX,
} from "../../adapters/memory/vcpu_ctl.ts";
import { waitFor as until } from "../../harness/wait.ts";

const MiB = 1 << 20;

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

function options(over: Partial<MachineOptions>): MachineOptions {
  return {
    blocks: [{ name: "pc.ram", size: 16 * MiB }],
    fill: "random",
    workload: { kind: "increment" },
    startPaused: false,
    incoming: false,
    ...over,
  };
}

/** Runs `fn` with machines it creates, disposing every one whatever happens. */
async function withMachines(
  fn: (make: (o: Partial<MachineOptions>) => Promise<Machine>) => Promise<void>,
) {
  const made: Machine[] = [];
  try {
    await fn(async (o) => {
      const m = await Machine.create(options(o));
      made.push(m);
      return m;
    });
  } finally {
    for (const m of made) await m.dispose();
  }
}

const written = (m: Machine) => m.vcpu.registers()["pages-written"];

Deno.test("machine: increment runs and dirties pages; stop parks it; cont resumes", async () => {
  await withMachines(async (make) => {
    const m = await make({});
    assert.equal(m.runstate, "running");
    await waitFor("booted and a few passes", () => m.vcpu.registers().passes >= 3);
    const into = new Uint8Array(m.shared.dirty.byteLength);
    const found = syncDirtyLog(new Uint8Array(m.shared.dirty), into);
    assert.ok(found > 0 && found <= 3840, `found ${found} dirty pages`);
    assert.equal(into[255], 0, "below the range start stays clean");
    await waitFor("a page dirtied again", () => countMarked(new Uint8Array(m.shared.dirty)) > 0);
    await m.stop();
    assert.equal(m.runstate, "paused");
    assert.ok(m.vcpu.isParked());
    assert.ok(m.vcpu.waitParked(10));
    const stopped = m.vcpu.registers();
    syncDirtyLog(new Uint8Array(m.shared.dirty), into);
    await sleep(50); // time passes, and nothing may happen in it
    assert.deepEqual(m.vcpu.registers(), stopped, "registers do not change while paused");
    assert.equal(countMarked(new Uint8Array(m.shared.dirty)), 0, "no page dirtied while paused");
    const digest = await m.digest();
    const check = digest["x-increment-check"]!;
    assert.deepEqual([check.ok, check.start, check.end], [true, MiB, 16 * MiB]);
    assert.deepEqual(await m.digest(), digest, "a parked guest digests the same twice");
    m.cont();
    assert.equal(m.runstate, "running");
    await waitFor("progress after cont", () => written(m) > stopped["pages-written"]);
    assert.equal(m.vcpu.isParked(), false);
    await m.stop();
    const info = m.info();
    assert.deepEqual(
      { ...info, workload: undefined },
      {
        runstate: "paused",
        "ram-size": 16 * MiB,
        "page-size": PAGE_SIZE,
        blocks: [{ name: "pc.ram", size: 16 * MiB, used: 16 * MiB }],
        workload: undefined,
        "cpu-throttle-percentage": 0,
        drives: [],
        "x-ram-backing": {
          "huge-pages": "off",
          "page-size": PAGE_SIZE,
          thp: null,
          reason: "--huge-pages off",
          "advised-bytes": 0,
          "huge-page-bytes": 0,
          probe: null,
        },
      },
    );
    assert.equal(info.workload.workload, "increment");
    assert.equal(info.workload.booted, true);
    assert.equal(info.workload.parked, true);
  });
});

Deno.test("machine: device state moves the loop to an incoming machine, which continues it", async () => {
  await withMachines(async (make) => {
    const blocks = [{ name: "pc.ram", size: 12 * MiB }, { name: "extra", size: 4 * MiB }];
    const src = await make({
      blocks,
      workload: { kind: "increment", start: 2 * MiB, end: 14 * MiB },
    });
    const dst = await make({ blocks, fill: "pattern", workload: { kind: "idle" }, incoming: true });
    assert.equal(dst.runstate, "inmigrate");
    assert.equal(countMarked(new Uint8Array(dst.shared.ram[0])), 0, "incoming RAM is not filled");
    await waitFor("source passes", () => src.vcpu.registers().passes >= 2);
    await src.stop();
    const state = src.vcpu.saveDeviceState();
    const regs = src.vcpu.registers();
    src.shared.ram.forEach((buf, i) => new Uint8Array(dst.shared.ram[i]).set(new Uint8Array(buf)));
    dst.vcpu.loadDeviceState(state);
    assert.deepEqual({ ...dst.vcpu.registers() }, { ...regs });
    const [a, b] = [await src.digest(), await dst.digest()];
    assert.deepEqual(b, a, "same RAM, same registers, same digest and check");
    assert.ok(a["x-increment-check"]!.ok);

    dst.cont();
    await waitFor("destination progress", () => written(dst) > regs["pages-written"] + 10_000);
    await dst.stop();
    const after = dst.vcpu.registers();
    assert.equal(after.workload, "increment");
    assert.ok(after.passes >= regs.passes);
    const check = (await dst.digest())["x-increment-check"]!;
    assert.ok(check.ok, `increment check after migration: ${JSON.stringify(check)}`);
    // The first page of the range has been incremented once per pass (plus the current one):
    // true on both sides only if the destination kept the source's passes and cursor.
    for (const [m, r] of [[src, regs], [dst, after]] as const) {
      const firstByte = new Uint8Array(m.shared.ram[0])[2 * MiB];
      assert.equal(firstByte, (r.passes + (r.cursor > r.start ? 1 : 0)) & 255);
    }
  });
});

Deno.test("machine: throttle 90 visibly reduces the pages written", async () => {
  await withMachines(async (make) => {
    const m = await make({ fill: "zero" });
    /** Pages written in a 100 ms window with throttle `pct`. */
    const window = async (pct: number) => {
      m.vcpu.throttle = pct;
      await sleep(10);
      const before = written(m);
      await sleep(100);
      return written(m) - before;
    };
    await waitFor("running", () => written(m) > 0);
    // On a busy machine any window may find the vCPU without a core. Windows alternate until
    // the best unthrottled one wrote more than twice the best throttled one: a throttle that
    // did nothing would write as much as the unthrottled vCPU, and the wait would time out.
    let free = 0;
    let throttled = 0;
    await until(
      "an unthrottled window to write twice the pages of every throttled one",
      async () => {
        free = Math.max(free, await window(0));
        throttled = Math.max(throttled, await window(90));
        return free > 2 * throttled;
      },
      { intervalMs: 0 },
    );
    assert.equal(m.info()["cpu-throttle-percentage"], 90);
    assert.throws(() => (m.vcpu.throttle = 100), RangeError);
    m.vcpu.throttle = 0;
    // A stop interrupts a throttle sleep.
    m.vcpu.throttle = 99;
    await m.stop();
  });
});

Deno.test("machine: postcopy fault blocks the vCPU until the page is received", async () => {
  await withMachines(async (make) => {
    const m = await make({ fill: "zero", incoming: true });
    const firstPage = MiB / PAGE_SIZE;
    m.vcpu.setPostcopy(true);
    m.cont();
    const fault = await m.vcpu.waitFaultAsync(0, 10_000);
    assert.deepEqual(fault, { seq: 1, page: firstPage });
    assert.deepEqual(nextFault(m.shared.ctl, 0), fault);
    assert.equal(nextFault(m.shared.ctl, 1), null);
    await sleep(30); // time passes, the vCPU stays blocked (and its blocktime grows by it)
    assert.equal(written(m), 0, "blocked: nothing written");
    assert.equal(m.vcpu.isParked(), false);
    assert.equal(nextFault(m.shared.ctl, 1), null, "still the same fault");
    markReceived(m.shared, firstPage);
    const second = await m.vcpu.waitFaultAsync(1, 10_000);
    assert.deepEqual(second, { seq: 2, page: firstPage + 1 });
    assert.equal(written(m), 1);
    const bt = m.vcpu.blocktime();
    assert.ok(bt.totalMs >= 20, `blocktime ${bt.totalMs} ms`);
    assert.ok(bt.faults >= 2);
    assert.deepEqual(blocktime(m.shared.ctl), m.vcpu.blocktime());
    // A stop reaches a vCPU blocked on a fault.
    await m.stop();
    assert.equal(written(m), 1);
    m.cont();
    assert.deepEqual(await m.vcpu.waitFaultAsync(2, 10_000), { seq: 3, page: firstPage + 1 });
    markReceivedRange(m.shared, 0, 4096);
    await waitFor("free running", () => m.vcpu.registers().passes >= 2);
    await m.stop();
    assert.ok((await m.digest())["x-increment-check"]!.ok);
  });
});

Deno.test("machine: random workload keeps to its rate and hot set", async () => {
  await withMachines(async (make) => {
    const t0 = performance.now();
    const m = await make({ fill: "zero", workload: { kind: "random", rate: 2000, hot: 0.25 } });
    await waitFor("100 pages written", () => written(m) >= 100);
    await m.stop();
    const elapsed = performance.now() - t0;
    const n = written(m);
    assert.ok(n > 0, "wrote something");
    // An upper bound: a busy machine only slows the vCPU down.
    assert.ok(n <= 2000 * (elapsed / 1000) + 21, `${n} pages in ${elapsed} ms at 2000/s`);
    const dirty = new Uint8Array(m.shared.dirty);
    assert.ok(countMarked(dirty.subarray(0, 1024)) > 0);
    assert.equal(countMarked(dirty.subarray(1024)), 0, "pages beyond the hot quarter untouched");
    assert.equal((await m.digest())["x-increment-check"], undefined);
  });
});

Deno.test("machine: -S starts paused, idle writes nothing, incoming waits; bad ranges refused", async () => {
  await withMachines(async (make) => {
    const paused = await make({ startPaused: true });
    const idle = await make({ workload: { kind: "idle" }, fill: "pattern" });
    const idle2 = await make({ workload: { kind: "idle" }, fill: "pattern", startPaused: true });
    assert.equal(paused.runstate, "paused");
    assert.equal(idle.runstate, "running");
    await sleep(50); // time passes, and nothing may be written in it
    assert.equal(written(paused), 0);
    assert.equal(written(idle), 0);
    assert.equal(countMarked(new Uint8Array(idle.shared.dirty)), 0);
    assert.equal(idle.vcpu.isParked(), false, "idle but running: not parked");
    await idle.stop();
    assert.deepEqual(
      (await idle.digest()).blocks,
      (await idle2.digest()).blocks,
      "pattern fill is deterministic",
    );
    assert.notDeepEqual((await paused.digest()).blocks, (await idle.digest()).blocks);
    assert.throws(() => paused.vcpu.setRunstate("bogus" as "running"), /unknown runstate/);
  });
  await assert.rejects(
    Machine.create(options({ workload: { kind: "increment", end: 32 * MiB } })),
    /increment range 0x100000..0x2000000 outside RAM of 16777216 bytes/,
  );
  await assert.rejects(Machine.create(options({ blocks: [] })), /at least one RAM block/);
});

Deno.test("machine: big guests are prepared by Workers, same result as in one thread", async () => {
  // 64 MiB: the smallest guest prepared by Workers (PARALLEL_PREP_BYTES).
  const blocks = [{ name: "pc.ram", size: 48 * MiB }, { name: "extra", size: 16 * MiB }];
  const reference = allocateGuest(blocks);
  prepareGuest(reference, "pattern");
  const sha = (buf: SharedArrayBuffer) =>
    createHash("sha256").update(new Uint8Array(buf)).digest("hex");
  const zero = (size: number) => createHash("sha256").update(new Uint8Array(size)).digest("hex");
  await withMachines(async (make) => {
    const pattern = await make({ blocks, fill: "pattern", startPaused: true });
    assert.deepEqual(
      (await pattern.digest()).blocks,
      blocks.map((b, i) => ({ ...b, used: b.size, sha256: sha(reference.ram[i]) })),
    );
    const incoming = await make({ blocks, fill: "random", incoming: true });
    assert.deepEqual(
      (await incoming.digest()).blocks,
      blocks.map((b) => ({ ...b, used: b.size, sha256: zero(b.size) })),
    );
    const random = await make({ blocks, startPaused: true });
    for (const buf of random.shared.ram) {
      const words = new Uint32Array(buf);
      let zeros = 0;
      for (let i = 0; i < words.length; i += 1024) if (words[i] === 0) zeros++;
      assert.ok(zeros < 4, `random fill left ${zeros} sampled zero words`);
    }
  });
});

Deno.test("machine: a workload writing output records faster than they are taken waits for the main thread (at most OUT_PENDING_MAX in flight)", async () => {
  await withMachines(async (make) => {
    // increment over 4 pages, unpaced: a pass (and an output record) every 4 page writes.
    const m = await make({ workload: { kind: "increment", start: 0, end: 4 * PAGE_SIZE } });
    const { i32, f64 } = ctlViews(m.shared.ctl);
    await waitFor("the first records", () => f64[F_NEXT_SEQ] > 10);
    // The main thread takes no message for 300 ms: the vCPU must stop writing records.
    const from = f64[F_NEXT_SEQ];
    const end = performance.now() + 300;
    while (performance.now() < end) { /* busy: no message is taken */ }
    const written = f64[F_NEXT_SEQ] - from;
    assert.ok(written <= 2 * OUT_PENDING_MAX, `${written} records written while none was taken`);
    assert.ok(Atomics.load(i32, OUT_PENDING) <= OUT_PENDING_MAX + 1);
    // Taken again, the records flow on.
    await waitFor("records flowing again", () => f64[F_NEXT_SEQ] > from + written + 100);
  });
});
