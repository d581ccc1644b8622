/**
 * Huge pages for guest RAM, in one process: the `--huge-pages` values, auto's decision and its
 * per-boot cache, advising buffers, counting the huge pages behind them (checked against the
 * kernel's own smaps flags and mincore), release-ram inside a huge page, pre-touch, fill and
 * digests with huge pages on and off, the snapshot kept on 4 KiB pages, and the XBZRLE cache.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import {
  adviseHugePages,
  HUGE_PAGE_SIZE,
  hugeAlignedBytes,
  hugeBytesInSmaps,
  hugePageBytes,
  hugePagesUnavailable,
  parseHugePagesMode,
  thpMode,
} from "../../adapters/memory/huge_pages.ts";
import { alignedRange } from "../../adapters/memory/libc.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { PageCache } from "../../domain/codecs/page_cache.ts";
import { PAGE_SIZE } from "../../adapters/memory/layout.ts";
import {
  cachedProbe,
  hugePagesWin,
  type PageSizeProbe,
  probeKey,
} from "../../adapters/memory/page_size_probe.ts";
import {
  hugePagesModeFrom,
  type RamBacking,
  resolveRamBacking,
} from "../../adapters/memory/ram_backing.ts";
import { releaseRange } from "../../adapters/memory/release_ram.ts";
import { addressOf, mappingsOf, residentBytes } from "../helpers/resident.ts";

const MiB = 1 << 20;
const THP = thpMode();
/** Whether this host can back memory with huge pages at all (THP mode madvise or always). */
const CAN = hugePagesUnavailable() === null;

function backing(huge: boolean): RamBacking {
  return {
    mode: huge ? "on" : "off",
    pageSize: huge ? HUGE_PAGE_SIZE : PAGE_SIZE,
    thp: THP,
    reason: huge ? "--huge-pages on" : "--huge-pages off",
    probe: null,
    fallback: false,
  };
}

function touch(buf: SharedArrayBuffer): void {
  const b = new Uint8Array(buf);
  for (let o = 0; o < b.length; o += PAGE_SIZE) b[o] = 1;
}

/** The mapping holding the first byte of `buf`'s 2 MiB-aligned part. */
function alignedMapping(buf: SharedArrayBuffer | ArrayBuffer) {
  const { start } = alignedRange(buf, 0, buf.byteLength, HUGE_PAGE_SIZE);
  return mappingsOf(buf).find((m) => m.start <= start && start < m.end)!;
}

Deno.test("huge pages: --huge-pages takes on, off or auto (default auto); anything else is refused", () => {
  assert.equal(parseHugePagesMode("on"), "on");
  assert.equal(parseHugePagesMode(" OFF "), "off");
  assert.equal(hugePagesModeFrom("auto"), "auto");
  assert.throws(() => parseHugePagesMode("yes"), {
    message: "--huge-pages expects on, off, auto, got 'yes'",
  });
  if (Deno.env.get("FERRY_HUGE_PAGES") === undefined) {
    assert.equal(hugePagesModeFrom(undefined), "auto");
  }
});

Deno.test("huge pages: auto chooses huge pages only where they backed the probe and copied faster", () => {
  const probe = (smallGBps: number, hugeGBps: number, hugeBacked = 2 * HUGE_PAGE_SIZE) =>
    ({ smallGBps, hugeGBps, hugeBacked, windowBytes: MiB, ms: 50, at: "" }) as PageSizeProbe;
  assert.equal(hugePagesWin(probe(0.36, 2.31)), true, "this kind of host: 6× faster");
  assert.equal(hugePagesWin(probe(6.6, 4.5)), false, "the other kind: slower with huge pages");
  assert.equal(hugePagesWin(probe(3.0, 3.1)), false, "within the noise: 4 KiB pages");
  assert.equal(hugePagesWin(probe(0.36, 2.31, HUGE_PAGE_SIZE)), false, "not backed by huge pages");
});

Deno.test("huge pages: the probe is measured once per boot and THP setting, then read from the cache", async () => {
  if (!CAN) return assert.ok(hugePagesUnavailable(), "the reason is given");
  const dir = await Deno.makeTempDir({ prefix: "ferry-probe-" });
  try {
    const first = await cachedProbe(dir);
    assert.equal(first.cached, false);
    const p = first.probe;
    assert.ok(p.smallGBps > 0 && p.hugeGBps > 0, JSON.stringify(p));
    // The kernel gives huge pages where it can find them (fewer when memory is fragmented);
    // what it gave is counted in whole huge pages, never more than the two windows.
    assert.ok(
      p.hugeBacked % HUGE_PAGE_SIZE === 0 && p.hugeBacked <= 2 * HUGE_PAGE_SIZE,
      `the probe counts the huge pages its windows got: ${p.hugeBacked}`,
    );
    const files = [...Deno.readDirSync(dir)].map((e) => e.name);
    assert.deepEqual(files, [`ferry-page-size-${probeKey()}.json`]);
    assert.match(probeKey()!, /^[0-9a-f-]{36}\.thp-(always|madvise|never)-/);
    const second = await cachedProbe(dir);
    assert.deepEqual(second, { probe: p, cached: true });
    const auto = await resolveRamBacking("auto", { cacheDir: dir });
    assert.equal(auto.pageSize, hugePagesWin(p) ? HUGE_PAGE_SIZE : PAGE_SIZE);
    assert.deepEqual(auto.probe, { ...p, cached: true });
    assert.match(auto.reason, /^auto: .*this boot's probe/);
    Deno.writeTextFileSync(`${dir}/${files[0]}`, "{ not json");
    assert.equal((await cachedProbe(dir)).cached, false, "a damaged cache is measured again");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("huge pages: on and off are decided without measuring; on falls back where the host cannot", async () => {
  const off = await resolveRamBacking("off");
  assert.deepEqual([off.pageSize, off.reason, off.probe, off.fallback], [
    PAGE_SIZE,
    "--huge-pages off",
    null,
    false,
  ]);
  const on = await resolveRamBacking("on");
  if (CAN) {
    assert.deepEqual([on.pageSize, on.reason, on.fallback], [
      HUGE_PAGE_SIZE,
      "--huge-pages on",
      false,
    ]);
  } else assert.deepEqual([on.pageSize, on.fallback], [PAGE_SIZE, true]);
});

Deno.test("huge pages: smaps counting: mappings inside count whole, one reaching beyond a buffer at most its share", () => {
  const smaps = [
    "7f0000000000-7f0000400000 rw-p 00000000 00:00 0",
    "AnonHugePages:      4096 kB",
    "7f0000400000-7f0000a00000 rw-p 00000000 00:00 0",
    "AnonHugePages:      6144 kB",
    "7f0000a00000-7f0000c00000 rw-p 00000000 00:00 0",
    "AnonHugePages:      2048 kB",
  ].join("\n");
  // The first mapping shares 2 MiB with the range, the last 1 MiB (less than a huge page).
  const range = { start: 0x7f0000200000n, end: 0x7f0000b00000n };
  assert.equal(hugeBytesInSmaps(smaps, [range]), 8 * MiB, "6 MiB inside, 2 MiB shared");
  assert.equal(hugeBytesInSmaps(smaps, []), 0);
  // Two buffers in one mapping of 22 MiB (memory the allocator reused; advice merged):
  // each counts its own share of the huge pages, and together no more than the mapping has.
  const merged = "55c284800000-55c285e00000 rw-p 00000000 00:00 0\nAnonHugePages:     22528 kB";
  const a = { start: 0x55c284800000n, end: 0x55c284800000n + BigInt(18 * MiB) };
  const b = { start: a.end + 4096n, end: 0x55c285e00000n };
  assert.equal(hugeBytesInSmaps(merged, [a]), 18 * MiB);
  assert.equal(hugeBytesInSmaps(merged, [b]), 2 * MiB, "its whole 2 MiB pages only");
  assert.equal(hugeBytesInSmaps(merged, [a, b]), 20 * MiB);
  // A mapping with fewer huge pages than the share counts what it has.
  const sparse = "55c284800000-55c285e00000 rw-p 00000000 00:00 0\nAnonHugePages:      4096 kB";
  assert.equal(hugeBytesInSmaps(sparse, [a]), 4 * MiB);
});

Deno.test("huge pages: an advised buffer's first touch faults in huge pages; NOHUGEPAGE gets none", () => {
  if (!CAN) return assert.ok(hugePagesUnavailable(), "the reason is given");
  const huge = new SharedArrayBuffer(16 * MiB);
  const small = new SharedArrayBuffer(16 * MiB);
  // Untouched memory fresh from the kernel faults in huge pages; memory the allocator reused
  // (another test in this process freed it) may already be resident on 4 KiB pages.
  const fresh = residentBytes(huge) === 0;
  const aligned = hugeAlignedBytes(huge);
  assert.ok(aligned >= 14 * MiB && aligned % HUGE_PAGE_SIZE === 0, `aligned part ${aligned}`);
  assert.equal(adviseHugePages(huge, true), aligned);
  assert.equal(adviseHugePages(small, false), hugeAlignedBytes(small));
  touch(huge);
  touch(small);
  const hm = alignedMapping(huge);
  assert.ok(hm.flags.includes("hg"), `MADV_HUGEPAGE in VmFlags: ${hm.flags}`);
  // The kernel merges the advised part with a neighbour advised alike (another test's buffer
  // in this process), so the mapping holds it, and may be larger.
  const { start } = alignedRange(huge, 0, huge.byteLength, HUGE_PAGE_SIZE);
  assert.ok(hm.start <= start && hm.end >= start + BigInt(aligned), "one advised mapping");
  // Huge pages where the kernel finds them: all of it on a quiet host, fewer when memory is
  // fragmented and compaction gives up; never more than the aligned part.
  const backed = hugePageBytes([huge])!;
  assert.ok(backed <= aligned && (backed > 0 || !fresh), `${backed} of ${aligned} on huge pages`);
  if (hm.end - hm.start === BigInt(aligned)) assert.equal(backed, hm.anonHugeKiB * 1024);
  assert.ok(alignedMapping(small).flags.includes("nh"), "MADV_NOHUGEPAGE in VmFlags");
  assert.equal(hugePageBytes([small]), 0);
  assert.equal(residentBytes(small), residentBytes(huge), "both wholly resident");
});

for (const huge of [true, false]) {
  const label = huge ? "huge pages" : "4 KiB pages";
  Deno.test(`release-ram on ${label}: released 4 KiB pages read zero and leave RSS; neighbours keep their bytes`, () => {
    if (huge && !CAN) return;
    const buf = new SharedArrayBuffer(8 * MiB);
    const fresh = residentBytes(buf) === 0; // see the first-touch test
    adviseHugePages(buf, huge);
    const b = new Uint8Array(buf);
    b.fill(0xab);
    const { start } = alignedRange(buf, 0, buf.byteLength, HUGE_PAGE_SIZE);
    const at = Number(start - addressOf(buf)) + 5 * PAGE_SIZE;
    const before = { resident: residentBytes(buf), huge: hugePageBytes([buf])! };
    // Advised, the kernel backs what it can with huge pages (all of it on a quiet host).
    if (huge) {
      assert.ok(
        before.huge <= hugeAlignedBytes(buf) && (before.huge > 0 || !fresh),
        `${before.huge}`,
      );
    } else assert.equal(before.huge, 0);
    const splitting = huge && before.huge === hugeAlignedBytes(buf);
    assert.equal(releaseRange(buf, at, 3 * PAGE_SIZE), 3 * PAGE_SIZE);
    assert.equal(before.resident - residentBytes(buf), 3 * PAGE_SIZE, "three pages left RSS");
    const after = hugePageBytes([buf])!;
    if (splitting) assert.equal(after, before.huge - HUGE_PAGE_SIZE, "the huge page was split");
    else assert.ok(after <= before.huge && after >= before.huge - HUGE_PAGE_SIZE, `${after}`);
    assert.equal(b.subarray(at, at + 3 * PAGE_SIZE).some((x) => x !== 0), false, "zeros");
    assert.equal(b[at - 1], 0xab);
    assert.equal(b[at + 3 * PAGE_SIZE], 0xab);
    assert.equal(b.subarray(0, at).every((x) => x === 0xab), true, "bytes before kept");
    assert.equal(b.subarray(at + 3 * PAGE_SIZE).every((x) => x === 0xab), true, "bytes after kept");
  });

  Deno.test(`machine on ${label}: pre-touch and fill fault in the pages asked for; digests hash the RAM`, async () => {
    if (huge && !CAN) return;
    const blocks = [{ name: "pc.ram", size: 24 * MiB }, { name: "extra", size: 8 * MiB }];
    const dst = await Machine.create({
      blocks,
      fill: "zero",
      workload: { kind: "idle" },
      startPaused: false,
      incoming: true,
      backing: backing(huge),
    });
    const src = await Machine.create({
      blocks,
      fill: "random",
      workload: { kind: "idle" },
      startPaused: true,
      incoming: false,
      backing: backing(huge),
    });
    try {
      for (const m of [dst, src]) {
        const info = m.info()["x-ram-backing"];
        const aligned = m.shared.ram.reduce((n, b) => n + hugeAlignedBytes(b), 0);
        assert.equal(info["page-size"], huge ? HUGE_PAGE_SIZE : PAGE_SIZE);
        assert.equal(info["advised-bytes"], huge ? aligned : 0);
        // The kernel backs advised memory with huge pages as far as it can: with memory
        // fragmented by a busy host some of it stays on 4 KiB pages (no error, and it is
        // what GET /machine must then report, as checked on the next line).
        if (huge) {
          const got = info["huge-page-bytes"] ?? 0;
          // What the kernel says of each block's mappings, and a second reading, should this
          // ever fail again (it did once, in a fresh clone's full run, not since).
          const seen = () =>
            JSON.stringify({
              info: info["huge-page-bytes"],
              again: hugePageBytes(m.shared.ram),
              mappings: m.shared.ram.map((b) =>
                mappingsOf(b).map((x) => ({
                  at: x.start.toString(16),
                  mib: Number(x.end - x.start) / MiB,
                  flags: x.flags.join(" "),
                  hugeKiB: x.anonHugeKiB,
                }))
              ),
              resident: m.shared.ram.map((b) => residentBytes(b)),
            });
          assert.ok(
            got > 0 && got <= aligned,
            `huge pages back ${got} of ${aligned} bytes: ${seen()}`,
          );
        } else assert.equal(info["huge-page-bytes"], 0);
        assert.equal(hugePageBytes(m.shared.ram), info["huge-page-bytes"]);
        for (const ram of m.shared.ram) {
          assert.ok(alignedMapping(ram).flags.includes(huge ? "hg" : "nh"));
          assert.ok(residentBytes(ram) >= ram.byteLength, "wholly touched");
        }
      }
      const sha = (b: SharedArrayBuffer) =>
        createHash("sha256").update(new Uint8Array(b)).digest("hex");
      const got = await src.digest("now");
      assert.deepEqual(
        got.blocks,
        src.shared.ram.map((b, i) => ({
          name: blocks[i].name,
          size: blocks[i].size,
          used: blocks[i].size,
          sha256: sha(b),
        })),
      );
      assert.equal(
        new Uint8Array(dst.shared.ram[0]).some((x) => x !== 0),
        false,
        "touched RAM reads zero",
      );
    } finally {
      await dst.dispose();
      await src.dispose();
    }
  });
}

Deno.test("snapshot with RAM on huge pages: the snapshot stays on 4 KiB pages, a page per first write", async () => {
  if (!CAN) return;
  const m = await Machine.create({
    blocks: [{ name: "pc.ram", size: 64 * MiB }],
    fill: "random",
    workload: { kind: "random", rate: 20_000, hot: 1 },
    startPaused: true,
    incoming: false,
    backing: backing(true),
    arrivalDigest: true, // snapshot buffers
  });
  try {
    const snap = m.shared.snap[0];
    assert.ok(alignedMapping(snap).flags.includes("nh"), "snapshot advised MADV_NOHUGEPAGE");
    assert.ok(alignedMapping(m.shared.ram[0]).flags.includes("hg"), "RAM advised MADV_HUGEPAGE");
    m.vcpu.beginSnapshot();
    m.cont();
    const copied = new Uint8Array(m.shared.snapCopied);
    const count = () => copied.reduce((n, x) => n + x, 0);
    const deadline = Date.now() + 10_000;
    while (count() < 200) {
      if (Date.now() > deadline) throw new Error(`waited for 200 pages copied aside, ${count()}`);
      await new Promise((r) => setTimeout(r, 10));
    }
    await m.stop();
    const pages = count();
    const resident = residentBytes(snap);
    // A SharedArrayBuffer's data starts 16 bytes past an OS page, so a guest page spans two,
    // and the OS page with the buffer's header is resident too.
    assert.ok(
      resident >= pages * PAGE_SIZE && resident <= (2 * pages + 1) * PAGE_SIZE,
      `${pages} pages copied aside, ${resident / PAGE_SIZE} snapshot pages resident`,
    );
    assert.equal(hugePageBytes([snap]), 0);
  } finally {
    await m.dispose();
  }
});

Deno.test("XBZRLE cache on huge pages: each data buffer (also after a resize) is advised before use", () => {
  if (!CAN) return;
  const seen: ArrayBuffer[] = [];
  const cache = new PageCache(16 * MiB, PAGE_SIZE, (b) => {
    seen.push(b);
    adviseHugePages(b, true);
  });
  const page = new Uint8Array(PAGE_SIZE);
  for (let p = 0; p < cache.slots; p++) {
    page[0] = p & 255;
    assert.ok(cache.insert(p, page, 0));
  }
  const data = cache.lookup(7)!;
  assert.equal(data[0], 7);
  assert.equal(seen.length, 1);
  assert.equal(data.buffer, seen[0], "the advised buffer holds the pages");
  // Advised is what Ferry controls; how many huge pages back it is the kernel's to give.
  assert.ok(alignedMapping(seen[0]).flags.includes("hg"), "the full cache is advised");
  const huge = hugePageBytes(seen) ?? 0;
  assert.ok(huge <= hugeAlignedBytes(seen[0]), `huge-page bytes ${huge} within the aligned part`);
  cache.resize(32 * MiB);
  assert.equal(seen.length, 2);
  assert.equal(cache.lookup(7, 1)![0], 7, "pages move to the new buffer");
  assert.ok(alignedMapping(seen[1]).flags.includes("hg"));
});
