/**
 * Drives (adapters/disk): `--drive` parsing, the image created or checked, and a guest write
 * marking its block dirty and written.
 *
 * @module
 */
import assert from "node:assert/strict";
import { DiskWriter } from "../../adapters/disk/disk_writer.ts";
import {
  DISK_BLOCK,
  DriveFile,
  drivesInfo,
  prepareDrive,
  setDrivesActive,
} from "../../adapters/disk/drive.ts";
import type { SharedGuest } from "../../adapters/memory/guest_ram.ts";
import {
  activateOnArrival,
  activatesOnArrival,
  setLateBlockActivate,
} from "../../domain/block_activation.ts";
import { checkDriveFile, checkDrives, parseDrive } from "../../adapters/disk/drive_spec.ts";

Deno.test("--drive: id, file and size (with --ram's suffixes); bad values named", () => {
  assert.deepEqual(parseDrive("id=disk0,file=/tmp/a.img,size=16M"), {
    id: "disk0",
    file: "/tmp/a.img",
    size: 16 << 20,
  });
  const bad: [string, RegExp][] = [
    ["id=d,file=/x", /expects id=ID,file=PATH,size=SIZE/],
    ["id=d,file=/x,size=16M,ro=on", /takes no option 'ro'/],
    ["id=d,file=/x,size=100K", /not a positive multiple of 65536/],
    ["id=d,file=/x,size=lots", /invalid size 'lots'/],
    ["id=a b,file=/x,size=1M", /id 'a b'/],
    ["id=d,id=e,file=/x,size=1M", /'id' given twice/],
  ];
  for (const [text, re] of bad) assert.throws(() => parseDrive(text), re, text);
  assert.throws(
    () => checkDrives([parseDrive("id=d,file=/a,size=1M"), parseDrive("id=d,file=/b,size=1M")]),
    /id 'd' given twice/,
  );
});

Deno.test("drive: a missing image is created at its size; another size is refused", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const file = `${dir}/a.img`;
    const spec = { id: "d", file, size: 4 * DISK_BLOCK };
    checkDriveFile(spec);
    const drive = prepareDrive(spec);
    assert.equal(Deno.statSync(file).size, 4 * DISK_BLOCK);
    assert.equal(drive.dirty.byteLength, 4);
    assert.throws(() => checkDriveFile({ ...spec, size: 8 * DISK_BLOCK }), /has 262144 bytes/);
    assert.throws(() => prepareDrive({ ...spec, size: 8 * DISK_BLOCK }), /has 262144 bytes/);
    const f = new DriveFile(drive);
    const data = new Uint8Array(4096).fill(7);
    f.guestWrite(DISK_BLOCK - 2048, data);
    assert.deepEqual([...f.dirty], [1, 1, 0, 0], "a write across a boundary marks both blocks");
    assert.deepEqual([...f.written], [1, 1, 0, 0]);
    const back = new Uint8Array(4096);
    f.read(DISK_BLOCK - 2048, back);
    assert.deepEqual(back, data);
    f.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("late-block-activate: when an arriving guest's drives activate; only active ones are written", () => {
  // process_incoming_migration_bh: without the capability always; with it only if it runs.
  assert.equal(activatesOnArrival(false, true), true);
  assert.equal(activatesOnArrival(false, false), true);
  assert.equal(activatesOnArrival(true, true), true);
  assert.equal(activatesOnArrival(true, false), false);
  const dir = Deno.makeTempDirSync();
  try {
    const spec = { id: "d", file: `${dir}/a.img`, size: 2 * DISK_BLOCK };
    const drive = prepareDrive(spec, false);
    assert.deepEqual(drivesInfo([drive]), [{ ...spec, active: false, "dirty-bitmaps": [] }]);
    const guest = { drives: [drive] } as unknown as SharedGuest;
    setLateBlockActivate(guest, true);
    assert.equal(activateOnArrival(guest, "paused"), "paused");
    assert.equal(drivesInfo([drive])[0].active, false, "late: a paused guest waits for cont");
    // The guest's writes skip an inactive image.
    const writer = new DiskWriter([drive], 1000);
    writer.tick(performance.now());
    assert.deepEqual([...new Uint8Array(drive.written)], [0, 0]);
    assert.equal(writer.writes, 0);
    activateOnArrival(guest, "running");
    assert.equal(drivesInfo([drive])[0].active, true, "a running guest owns its drives");
    writer.tick(performance.now() + 10);
    assert.ok(writer.writes > 0);
    assert.ok(new Uint8Array(drive.written).some((b) => b === 1));
    setDrivesActive([drive], false);
    setLateBlockActivate(guest, false);
    activateOnArrival(guest, "paused");
    assert.equal(drivesInfo([drive])[0].active, true, "without late: active on arrival");
    writer.close();
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
