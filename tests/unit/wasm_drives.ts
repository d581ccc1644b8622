/**
 * A WebAssembly guest's drives as WASI files (adapters/wasm/wasi_drives.ts), without a guest:
 * the calls as a module makes them, on guest memory. A write lands in the image and marks its
 * blocks dirty and written (what a block migration resends) and the guest pages the host
 * wrote; writes stop at the image's end; an inactive drive is not written; the open files
 * travel in the guest's state and a destination without the drive refuses them, naming it.
 */
import assert from "node:assert/strict";
import { DISK_BLOCK, prepareDrive, setDrivesActive } from "../../adapters/disk/drive.ts";
import {
  checkOpenFiles,
  DRIVES_FD,
  guestBytes,
  WasiDrives,
} from "../../adapters/wasm/wasi_drives.ts";
import { decodeGuestState, encodeGuestState } from "../../adapters/wasm/wasm_device_state.ts";
import { DeviceStateError } from "../../adapters/memory/device_state.ts";

const EIO = 29, ENOENT = 44, ENOSPC = 51, EBADF = 8;
const SIZE = 4 * DISK_BLOCK;

Deno.test("wasi drives: path_open, fd_write / fd_pwrite mark blocks, fd_read / fd_pread, the end, inactive", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const drive = prepareDrive({ id: "disk0", file: `${dir}/d.img`, size: SIZE });
    const memory = new WebAssembly.Memory({ initial: 2, maximum: 4, shared: true });
    const dirty = new Uint8Array(32);
    const mem = guestBytes(memory, dirty);
    const files = new WasiDrives([drive], mem);
    const { u8, dv } = mem;
    // The preopened directory and its name.
    assert.equal(files.prestatGet(DRIVES_FD, 0), 0);
    assert.equal(dv.getUint32(4, true), "/drives".length);
    assert.equal(files.prestatDirName(DRIVES_FD, 16, 7), 0);
    assert.equal(new TextDecoder().decode(u8.subarray(16, 23)), "/drives");
    const name = (s: string) => (u8.set(new TextEncoder().encode(s), 100), s.length);
    assert.equal(files.pathOpen(DRIVES_FD, 100, name("nope"), 0, 0n, 0, 200), ENOENT);
    const rw = (1n << 1n) | (1n << 6n);
    assert.equal(files.pathOpen(DRIVES_FD, 100, name("disk0"), 0, rw, 0, 200), 0);
    const fd = dv.getUint32(200, true);
    assert.equal(fd, DRIVES_FD + 1);
    // fd_write at the position after a seek into block 1: bytes 8192.. of guest memory.
    u8.fill(0xab, 8192, 8192 + 100);
    dirty.fill(0);
    const iov = (at: number, ptr: number, len: number) => {
      dv.setUint32(at, ptr, true);
      dv.setUint32(at + 4, len, true);
    };
    assert.equal(files.seek(fd, BigInt(DISK_BLOCK + 10), 0, 300), 0);
    iov(400, 8192, 100);
    assert.equal(files.write(fd, 400, 1, null, 300), 0);
    assert.equal(dv.getUint32(300, true), 100);
    const image = await Deno.readFile(`${dir}/d.img`);
    assert.deepEqual(
      image.subarray(DISK_BLOCK + 10, DISK_BLOCK + 110),
      new Uint8Array(100).fill(0xab),
    );
    assert.deepEqual([...new Uint8Array(drive.dirty)], [0, 1, 0, 0], "block 1 dirty");
    assert.deepEqual([...new Uint8Array(drive.written)], [0, 1, 0, 0], "and written");
    assert.equal(files.tell(fd, 300), 0);
    assert.equal(Number(dv.getBigUint64(300, true)), DISK_BLOCK + 110);
    // fd_pread into guest memory at 20000: the bytes, and that guest page marked dirty.
    dirty.fill(0);
    iov(400, 20000, 100);
    assert.equal(files.read(fd, 400, 1, BigInt(DISK_BLOCK + 10), 300), 0);
    assert.deepEqual(u8.subarray(20000, 20100), new Uint8Array(100).fill(0xab));
    assert.equal(dirty[20000 >>> 12], 1);
    // fd_pwrite across the end is cut; at the end nothing is written: ENOSPC.
    iov(400, 8192, 100);
    assert.equal(files.write(fd, 400, 1, BigInt(SIZE - 40), 300), 0);
    assert.equal(dv.getUint32(300, true), 40);
    assert.equal(files.write(fd, 400, 1, BigInt(SIZE), 300), ENOSPC);
    assert.equal(files.read(fd, 400, 1, BigInt(SIZE), 300), 0);
    assert.equal(dv.getUint32(300, true), 0, "end of file");
    // An inactive drive (a source after its switchover) is not written.
    setDrivesActive([drive], false);
    new Uint8Array(drive.dirty).fill(0);
    assert.equal(files.write(fd, 400, 1, 0n, 300), EIO);
    assert.deepEqual([...new Uint8Array(drive.dirty)], [0, 0, 0, 0]);
    // The open file travels in the guest's state, its position with it.
    const state = {
      started: true,
      exited: false,
      exitCode: 0,
      nextSeq: 3,
      monotonicNs: 5,
      globals: [],
      files: files.files(),
      stack: new Uint8Array([1, 2, 3]),
    };
    const back = decodeGuestState(encodeGuestState(state), 0);
    assert.deepEqual(back.files, [{ fd, drive: "disk0", pos: DISK_BLOCK + 110, flags: 3 }]);
    assert.deepEqual(back.stack, state.stack);
    const other = new WasiDrives([drive], mem);
    other.restore(back.files);
    assert.equal(other.tell(fd, 300), 0);
    assert.equal(Number(dv.getBigUint64(300, true)), DISK_BLOCK + 110);
    assert.equal(files.close_(fd), 0);
    assert.equal(files.close_(fd), EBADF);
    files.close();
    other.close();
    checkOpenFiles(back.files, [{ id: "disk0", size: SIZE }]);
    assert.throws(
      () => checkOpenFiles(back.files, [{ id: "disk1", size: SIZE }]),
      (e) =>
        e instanceof DeviceStateError &&
        /drive 'disk0' open.*no --drive of that id/.test(e.message),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
