import assert from "node:assert/strict";
import fc from "fast-check";
import { countMarked, syncDirtyLog } from "../../adapters/memory/dirty_log.ts";
import {
  allocateGuest,
  fillPattern,
  fillRandom,
  guestMemory,
  prepareGuest,
  prepJobs,
} from "../../adapters/memory/guest_ram.ts";
import { incrementCheck } from "../../adapters/memory/increment_check.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import {
  stepIdle,
  stepIncrement,
  stepRandom,
  type WorkloadRegs,
} from "../../adapters/memory/workload.ts";
import { resolveWorkload } from "../../adapters/memory/workload_spec.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

/** Two blocks so walks cross a block boundary: 8 pages + 8 pages. */
function twoBlockGuest() {
  return allocateGuest([{ name: "pc.ram", size: 8 * PAGE_SIZE }, {
    name: "extra",
    size: 8 * PAGE_SIZE,
  }]);
}

function firstBytes(guest: ReturnType<typeof allocateGuest>): number[] {
  const mem = guestMemory(guest);
  const out: number[] = [];
  guest.layout.forEach((b, i) => {
    for (let p = 0; p < b.pages; p++) out.push(mem.bytes[i][p * PAGE_SIZE]);
  });
  return out;
}

function incRegs(start: number, end: number): WorkloadRegs {
  return resolveWorkload(
    { kind: "increment", start: start * PAGE_SIZE, end: end * PAGE_SIZE },
    16 * PAGE_SIZE,
    [1, 2, 3, 4],
  );
}

Deno.test("increment: boots (zeroes) its range once, then adds 1 per page, across blocks", () => {
  const guest = twoBlockGuest();
  prepareGuest(guest, "random");
  const mem = guestMemory(guest);
  const regs = incRegs(2, 12);
  const before = firstBytes(guest);
  assert.equal(stepIncrement(regs, mem, 4), 4);
  assert.deepEqual([regs.cursor / PAGE_SIZE, regs.booted, regs.passes, regs.pagesWritten], [
    6,
    false,
    0,
    4,
  ]);
  assert.equal(stepIncrement(regs, mem, 6), 6);
  assert.deepEqual([regs.cursor / PAGE_SIZE, regs.booted, regs.passes], [2, true, 0]);
  const booted = firstBytes(guest);
  assert.deepEqual(booted.slice(2, 12), new Array(10).fill(0));
  assert.deepEqual([...booted.slice(0, 2), ...booted.slice(12)], [
    ...before.slice(0, 2),
    ...before.slice(12),
  ]);
  // Dirty marks exactly for the range.
  const into = new Uint8Array(mem.dirty.length);
  assert.equal(syncDirtyLog(mem.dirty, into), 10);
  assert.deepEqual([...into.subarray(0, 16)], [0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0]);
  // Then 1.5 passes: pages 2..11 = 1, then 2..6 = 2.
  assert.equal(stepIncrement(regs, mem, 15), 15);
  assert.deepEqual([regs.cursor / PAGE_SIZE, regs.passes, regs.pagesWritten], [7, 1, 25]);
  assert.deepEqual(firstBytes(guest).slice(2, 12), [2, 2, 2, 2, 2, 1, 1, 1, 1, 1]);
  assert.ok(incrementCheck(guest.layout, mem.bytes, 2 * PAGE_SIZE, 12 * PAGE_SIZE).ok);
  // Only first bytes change: the rest of a page keeps its fill.
  assert.equal(countMarked(mem.dirty), 10);
});

Deno.test("increment: the walk always passes the check; a wrong restart fails it (property)", () => {
  fc.assert(
    fc.property(
      fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 20 }),
      (chunks) => {
        const guest = twoBlockGuest();
        const mem = guestMemory(guest);
        const regs = incRegs(1, 15);
        for (const n of chunks) stepIncrement(regs, mem, n);
        const check = incrementCheck(guest.layout, mem.bytes, regs.start, regs.end);
        assert.ok(check.ok, JSON.stringify(check));
        assert.ok(check.steps <= 1);
        // The value of the first page follows from the registers.
        const first = mem.bytes[0][PAGE_SIZE];
        const touched = regs.booted ? regs.passes + (regs.cursor > regs.start ? 1 : 0) : 0;
        assert.equal(first, touched & 255);
        // Restarting from the range start instead of the cursor breaks the check mid-range.
        if (regs.booted && regs.cursor > regs.start + PAGE_SIZE) {
          const wrong = { ...regs, cursor: regs.start };
          stepIncrement(wrong, mem, (regs.cursor - regs.start) / PAGE_SIZE - 1);
          assert.equal(incrementCheck(guest.layout, mem.bytes, regs.start, regs.end).ok, false);
        }
      },
    ),
    { seed },
  );
});

Deno.test("incrementCheck: uniform passes, one step passes, two steps or a jump fail", () => {
  const guest = allocateGuest([{ name: "pc.ram", size: 8 * PAGE_SIZE }]);
  const ram = guestMemory(guest).bytes;
  const set = (values: number[]) => values.forEach((v, p) => (ram[0][p * PAGE_SIZE] = v));
  const check = () => incrementCheck(guest.layout, ram, 0, 8 * PAGE_SIZE);
  set([5, 5, 5, 5, 5, 5, 5, 5]);
  assert.deepEqual(check(), { ok: true, steps: 0, start: 0, end: 8 * PAGE_SIZE });
  set([0, 0, 0, 255, 255, 255, 255, 255]);
  assert.deepEqual(check(), { ok: true, steps: 1, start: 0, end: 8 * PAGE_SIZE });
  set([7, 7, 6, 6, 6, 5, 5, 5]);
  assert.deepEqual(check().ok, false);
  assert.equal(check().steps, 2);
  set([7, 7, 9, 9, 9, 9, 9, 9]);
  assert.equal(check().ok, false);
  set([7, 7, 5, 5, 5, 5, 5, 5]);
  assert.equal(check().ok, false);
});

Deno.test("increment with postcopy: stops before a missing page and reports it", () => {
  const guest = twoBlockGuest();
  const mem = guestMemory(guest);
  const received = new Uint8Array(guest.received);
  mem.received = received;
  const regs = incRegs(2, 12);
  received.fill(1, 2, 5);
  assert.equal(stepIncrement(regs, mem, 100), 3);
  assert.equal(mem.fault, 5);
  assert.equal(regs.cursor, 5 * PAGE_SIZE);
  assert.equal(countMarked(mem.dirty), 3);
  assert.equal(stepIncrement(regs, mem, 100), 0);
  assert.equal(mem.fault, 5);
  received.fill(1);
  assert.equal(stepIncrement(regs, mem, 7), 7);
  assert.equal(mem.fault, -1);
  assert.equal(regs.booted, true);
});

Deno.test("random: writes 64 PRNG bytes at aligned offsets of hot pages only, deterministically", () => {
  const run = () => {
    const guest = allocateGuest([{ name: "pc.ram", size: 64 * PAGE_SIZE }, {
      name: "b",
      size: 64 * PAGE_SIZE,
    }]);
    const mem = guestMemory(guest);
    const regs = resolveWorkload({ kind: "random", rate: 1000, hot: 0.25 }, 128 * PAGE_SIZE, [
      9,
      8,
      7,
      6,
    ]);
    assert.equal(stepRandom(regs, mem, 500), 500);
    assert.equal(regs.pagesWritten, 500);
    return { guest, mem, regs };
  };
  const a = run(), b = run();
  assert.deepEqual(a.regs, b.regs, "same seed, same registers");
  assert.deepEqual(new Uint8Array(a.guest.ram[0]), new Uint8Array(b.guest.ram[0]));
  const marked = countMarked(a.mem.dirty);
  assert.ok(marked > 25 && marked <= 32, `hot set is 32 pages, ${marked} marked`);
  for (let p = 32; p < 128; p++) assert.equal(a.mem.dirty[p], 0, `cold page ${p} untouched`);
  assert.equal(countMarked(new Uint8Array(a.guest.ram[1])), 0, "second block is cold");
  // Changed bytes come in aligned 64-byte groups.
  const ram = a.mem.bytes[0];
  for (let off = 0; off < 64 * PAGE_SIZE; off += 64) {
    const nz = countMarked(ram.subarray(off, off + 64));
    assert.ok(nz === 0 || nz > 40, `group at ${off} has ${nz} non-zero bytes`);
  }
});

Deno.test("random with postcopy: the PRNG rewinds so the same page is asked for again", () => {
  const guest = allocateGuest([{ name: "pc.ram", size: 32 * PAGE_SIZE }]);
  const mem = guestMemory(guest);
  mem.received = new Uint8Array(guest.received);
  const regs = resolveWorkload({ kind: "random", rate: 1000, hot: 1 }, 32 * PAGE_SIZE, [
    1,
    2,
    3,
    4,
  ]);
  const prng = [...regs.prng];
  assert.equal(stepRandom(regs, mem, 10), 0);
  const fault = mem.fault;
  assert.ok(fault >= 0 && fault < 32);
  assert.deepEqual(regs.prng, prng);
  mem.received[fault] = 1;
  const n = stepRandom(regs, mem, 10);
  assert.ok(n >= 1);
  assert.equal(mem.dirty[fault], 1);
});

Deno.test("idle touches nothing", () => {
  const guest = twoBlockGuest();
  const mem = guestMemory(guest);
  const regs = resolveWorkload({ kind: "idle" }, 16 * PAGE_SIZE, [1, 2, 3, 4]);
  assert.equal(stepIdle(regs, mem, 1000), 0);
  assert.equal(countMarked(mem.dirty), 0);
  assert.equal(regs.pagesWritten, 0);
});

Deno.test("fills: random differs per seed, pattern is deterministic and per-page distinct", () => {
  const a = new SharedArrayBuffer(8 * PAGE_SIZE), b = new SharedArrayBuffer(8 * PAGE_SIZE);
  fillRandom(new Uint32Array(a), 1), fillRandom(new Uint32Array(b), 2);
  assert.notDeepEqual(new Uint8Array(a), new Uint8Array(b));
  assert.ok(countMarked(new Uint8Array(a)) > 8 * PAGE_SIZE * 0.98);
  fillPattern(new Uint8Array(a), 300), fillPattern(new Uint8Array(b), 300);
  assert.deepEqual(new Uint8Array(a), new Uint8Array(b));
  const bytes = new Uint8Array(a);
  assert.deepEqual([...bytes.subarray(PAGE_SIZE, PAGE_SIZE + 10)], [
    45,
    1,
    0,
    0,
    0,
    0,
    0,
    0,
    53,
    54,
  ]);
  const pages = new Set<string>();
  for (let p = 0; p < 8; p++) pages.add(bytes.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE).join());
  assert.equal(pages.size, 8);
  const guest = allocateGuest([{ name: "pc.ram", size: 4 * PAGE_SIZE }]);
  prepareGuest(guest, "touch");
  assert.equal(countMarked(new Uint8Array(guest.ram[0])), 0, "pre-touching keeps RAM zero");
});

Deno.test("prepJobs: split into shares that cover every page once; pattern independent of split", () => {
  const specs = [{ name: "pc.ram", size: 10 * PAGE_SIZE }, { name: "b", size: 7 * PAGE_SIZE }];
  for (const parts of [1, 2, 3, 4, 40]) {
    const guest = allocateGuest(specs);
    const jobs = prepJobs(guest, "pattern", parts);
    assert.equal(jobs.reduce((n, j) => n + j.pages, 0), 17);
    assert.deepEqual(
      jobs.map((j) => j.firstPage).sort((x, y) => x - y),
      [...new Set(jobs.map((j) => j.firstPage))].sort((x, y) => x - y),
    );
    for (const job of jobs.reverse()) {
      const block = guest.ram.indexOf(job.buf);
      assert.equal(job.firstPage, guest.layout[block].firstPage + job.pageInBlock);
    }
    prepareGuest(guest, "pattern");
    const whole = allocateGuest(specs);
    for (const job of prepJobs(whole, "pattern", parts)) {
      fillPattern(
        new Uint8Array(job.buf, job.pageInBlock * PAGE_SIZE, job.pages * PAGE_SIZE),
        job.firstPage,
      );
    }
    assert.deepEqual(
      whole.ram.map((b) => new Uint8Array(b)),
      guest.ram.map((b) => new Uint8Array(b)),
    );
  }
  assert.deepEqual(prepJobs(allocateGuest(specs), "zero", 4), []);
  const random = allocateGuest(specs);
  prepareGuest(random, "random");
  assert.ok(random.ram.every((b) => countMarked(new Uint8Array(b)) > b.byteLength * 0.98));
});

Deno.test("output: increment writes one record per pass, the same on two copies", () => {
  const run = () => {
    const guest = twoBlockGuest();
    const mem = guestMemory(guest);
    const regs = incRegs(2, 12);
    assert.equal(stepIncrement(regs, mem, 10), 10);
    assert.deepEqual(mem.out, [], "the boot walk writes no record");
    stepIncrement(regs, mem, 25);
    return mem.out.splice(0);
  };
  const a = run();
  assert.deepEqual(a, ["increment pass 1 pages 20\n", "increment pass 2 pages 30\n"]);
  assert.deepEqual(run(), a);
});

Deno.test("output: random writes a record every 1000 pages; clock=on makes them the host's", () => {
  const run = (clock: boolean) => {
    const guest = allocateGuest([{ name: "pc.ram", size: 64 * PAGE_SIZE }]);
    const mem = guestMemory(guest);
    const spec = { kind: "random" as const, rate: 1000, hot: 1, clock };
    const regs = resolveWorkload(spec, 64 * PAGE_SIZE, [9, 8, 7, 6]);
    assert.equal(regs.clock, clock);
    for (let k = 0; k < 10; k++) stepRandom(regs, mem, 250);
    return mem.out.splice(0);
  };
  assert.deepEqual(run(false), [1, 2].map((k) => `random pages ${k * 1000}\n`));
  const before = Date.now();
  const withClock = run(true);
  assert.equal(withClock.length, 2);
  for (const [k, r] of withClock.entries()) {
    const m = /^random pages (\d+) clock (\d+)\n$/.exec(r);
    assert.ok(m, r);
    assert.equal(Number(m[1]), (k + 1) * 1000);
    assert.ok(Number(m[2]) >= before && Number(m[2]) <= Date.now(), r);
  }
});
