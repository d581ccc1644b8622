/**
 * The destination's disk section (DiskSectionLoader), without sockets: the source's drives
 * must be this agent's of the same id and size, and a run outside the image is refused before
 * anything is written; a run inside lands in the image.
 *
 * @module
 */
import assert from "node:assert/strict";
import { bitmapsOf, DISK_BLOCK, DriveFile, prepareDrive } from "../../adapters/disk/drive.ts";
import { DiskSectionLoader } from "../../domain/engine/disk_section_loader.ts";
import {
  encodeDiskConfig,
  encodeDiskData,
  encodeDiskZero,
  type WireDrive,
} from "../../domain/wire/disk.ts";
import { encodeDiskBitmap } from "../../domain/wire/disk_bitmap.ts";
import type { FrameReader } from "../../domain/wire/frame_reader.ts";
import { FRAME_HEADER_SIZE, WireError } from "../../domain/wire/mod.ts";

/** A reader over one frame's payload (what the loader asks of FrameReader). */
function readerOf(frame: Uint8Array): { type: number; length: number; reader: FrameReader } {
  let off = FRAME_HEADER_SIZE;
  const payload = frame.subarray(FRAME_HEADER_SIZE);
  const reader = {
    readPayload: () => Promise.resolve(payload.slice(off - FRAME_HEADER_SIZE)),
    readInto: (target: Uint8Array) => {
      target.set(frame.subarray(off, off + target.length));
      off += target.length;
      return Promise.resolve();
    },
  } as unknown as FrameReader;
  return { type: frame[0], length: payload.length, reader };
}

function load(l: DiskSectionLoader, frame: Uint8Array): Promise<void> {
  const { type, length, reader } = readerOf(frame);
  return l.loadState(type, length, reader);
}

const config = (drives: WireDrive[]) => encodeDiskConfig(drives);

Deno.test("disk loader: drives must match; runs outside the image are refused, inside written", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const size = 4 * DISK_BLOCK;
    const drive = prepareDrive({ id: "disk0", file: `${dir}/d.img`, size });
    const fresh = () => new DiskSectionLoader([drive]);
    await assert.rejects(
      load(fresh(), config([{ id: "disk9", size, blockSize: DISK_BLOCK }])),
      /no drive 'disk9' here \(start the destination with --drive id=disk9/,
    );
    await assert.rejects(
      load(fresh(), config([{ id: "disk0", size: 2 * size, blockSize: DISK_BLOCK }])),
      /drive 'disk0' has 262144 bytes here, the source's 524288/,
    );
    await assert.rejects(
      load(fresh(), encodeDiskZero({ drive: 0, offset: 0, length: 1 })),
      /DISK_ZERO before DISK_CONFIG/,
    );
    const l = fresh();
    await load(l, config([{ id: "disk0", size, blockSize: DISK_BLOCK }]));
    const data = new Uint8Array(4096).fill(0xab);
    await assert.rejects(
      load(l, encodeDiskData({ drive: 0, offset: size - 4095, length: 4096 }, data)),
      (e) => e instanceof WireError && /lies outside drive 'disk0'/.test(e.message),
    );
    assert.equal(Deno.statSync(drive.file).size, size, "nothing written past the image");
    assert.deepEqual(Deno.readFileSync(drive.file), new Uint8Array(size), "nothing written");
    await load(l, encodeDiskData({ drive: 0, offset: DISK_BLOCK, length: 4096 }, data));
    await load(l, encodeDiskZero({ drive: 0, offset: DISK_BLOCK + 1024, length: 1024 }));
    await l.settle();
    l.loadCleanup();
    const img = Deno.readFileSync(drive.file);
    const want = new Uint8Array(size);
    want.set(data, DISK_BLOCK);
    want.fill(0, DISK_BLOCK + 1024, DISK_BLOCK + 2048);
    assert.deepEqual(img, want);
    assert.deepEqual([...new Uint8Array(drive.written)], [0, 1, 0, 0], "received blocks marked");
    await assert.rejects(
      load(l, config([{ id: "disk0", size, blockSize: DISK_BLOCK }])),
      /a second DISK_CONFIG/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("disk loader: a dirty bitmap arrives, bounds-checked, and keeps counting here", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const size = 20 * DISK_BLOCK;
    const drive = prepareDrive({ id: "disk0", file: `${dir}/d.img`, size });
    const bitmaps = bitmapsOf(drive);
    assert.equal(bitmaps.add("old"), null);
    const l = new DiskSectionLoader([drive]);
    await assert.rejects(
      load(l, encodeDiskBitmap({ drive: 0, name: "b", first: 0, marks: new Uint8Array(1) })),
      /DISK_BITMAP before DISK_CONFIG/,
    );
    await load(l, config([{ id: "disk0", size, blockSize: DISK_BLOCK }]));
    const marks = new Uint8Array(20);
    marks[3] = marks[19] = 1;
    // Two runs of one bitmap: blocks 0..9, then 10..19.
    await load(
      l,
      encodeDiskBitmap({ drive: 0, name: "b", first: 0, marks: marks.subarray(0, 10) }),
    );
    await load(l, encodeDiskBitmap({ drive: 0, name: "b", first: 10, marks: marks.subarray(10) }));
    await assert.rejects(
      load(l, encodeDiskBitmap({ drive: 0, name: "b", first: 15, marks: new Uint8Array(6) })),
      /DISK_BITMAP blocks 15 \+ 6 lie outside drive 'disk0' of 20 blocks/,
    );
    await assert.rejects(
      load(l, encodeDiskBitmap({ drive: 1, name: "b", first: 0, marks: new Uint8Array(1) })),
      /DISK_BITMAP names drive 1, the stream has 1/,
    );
    assert.deepEqual(bitmaps.read("b"), marks);
    assert.deepEqual(bitmaps.list().map((b) => [b.name, b.count]), [
      ["old", 0],
      ["b", 2 * DISK_BLOCK],
    ]);
    // The guest runs here and writes block 5: the arrived bitmap counts it.
    const f = new DriveFile(drive);
    f.guestWrite(5 * DISK_BLOCK, new Uint8Array(10));
    f.close();
    assert.equal(bitmaps.list().find((b) => b.name === "b")!.count, 3 * DISK_BLOCK);
    l.loadCleanup();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
