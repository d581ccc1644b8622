/**
 * A drive (`--drive id=ID,file=PATH,size=SIZE`): a raw image file and two byte maps, one byte
 * per 64 KiB block on SharedArrayBuffers, that every Worker opening the drive shares:
 *
 * - `dirty`: set by each guest write (data first, then the mark); a block migration
 *   fetches-and-clears it, as QEMU's block migration reads its dirty bitmap;
 * - `written`: set by each write and never cleared: the blocks written since this agent
 *   started, the base an incremental (`inc`) migration sends from (the destination's image
 *   starts as the same base image). A destination marks the blocks it receives.
 *
 * A drive is *active* (QEMU's BlockDeviceInfo `active`) while this agent's guest may use it:
 * from the start on a source, from the arrival of the guest (or its `cont`, with
 * `late-block-activate`) on a destination; a source's drives go inactive at the switchover and
 * active again when the guest comes back (see domain/block_activation.ts). The guest writes only
 * to an active drive.
 *
 * Each Worker opens the file itself ({@link DriveFile}); writes go through the page cache, so
 * a read after a write in another Worker sees it.
 *
 * @module
 */

import { type BitmapInfo, bitmapsBuffer, DriveBitmaps } from "./drive_bitmaps.ts";

/** The drive's block: the unit of dirty tracking and of the disk's section records. */
export const DISK_BLOCK = 64 << 10;
/** Largest drive size (1 TiB): bounds the maps (16 Mi blocks). */
export const MAX_DRIVE_SIZE = 2 ** 40;
/** Most drives a machine has. */
export const MAX_DRIVES = 16;

/** A parsed `--drive`. */
export interface DriveSpec {
  id: string;
  file: string;
  size: number;
}

/** A drive as every Worker sees it (structured-cloneable). */
export interface SharedDrive extends DriveSpec {
  /** One byte per block: written since the last fetch-and-clear. */
  dirty: SharedArrayBuffer;
  /** One byte per block: written since the agent started (or received). */
  written: SharedArrayBuffer;
  /** One Int32: 1 while the drive is active. */
  active: SharedArrayBuffer;
  /** Its named dirty bitmaps (drive_bitmaps.ts). */
  bitmaps: SharedArrayBuffer;
}

/** `GET /drives`: a drive, whether it is active, its dirty bitmaps. */
export interface DriveInfo extends DriveSpec {
  active: boolean;
  "dirty-bitmaps": BitmapInfo[];
}

/** Blocks of a drive of `size` bytes. */
export function blocksOf(size: number): number {
  return Math.ceil(size / DISK_BLOCK);
}

/**
 * Opens (creating when missing) the image of `spec`: a new file is sized to `size` (sparse,
 * zeros); an existing one must have that size. Throws naming the file otherwise. `active`:
 * whether the guest may use it from the start (not on a destination waiting for its guest).
 */
export function prepareDrive(spec: DriveSpec, active = true): SharedDrive {
  const f = Deno.openSync(spec.file, { read: true, write: true, create: true });
  try {
    const size = f.statSync().size;
    if (size === 0) f.truncateSync(spec.size);
    else if (size !== spec.size) {
      throw new RangeError(
        `--drive ${spec.id}: ${spec.file} has ${size} bytes, not the size ${spec.size} given`,
      );
    }
  } finally {
    f.close();
  }
  const n = blocksOf(spec.size);
  const cell = new SharedArrayBuffer(4);
  new Int32Array(cell)[0] = active ? 1 : 0;
  return {
    ...spec,
    dirty: new SharedArrayBuffer(n),
    written: new SharedArrayBuffer(n),
    active: cell,
    bitmaps: bitmapsBuffer(n),
  };
}

/** The named dirty bitmaps of `drive`. */
export function bitmapsOf(drive: SharedDrive): DriveBitmaps {
  return new DriveBitmaps(drive.bitmaps, drive.size, DISK_BLOCK);
}

/** Whether `drive` is active (this agent's guest may use it). */
export function driveActive(drive: SharedDrive): boolean {
  return Atomics.load(new Int32Array(drive.active), 0) === 1;
}

/** Activates (QEMU's bdrv_activate_all) or inactivates (bdrv_inactivate_all) every drive. */
export function setDrivesActive(drives: readonly SharedDrive[] | undefined, on: boolean): void {
  for (const d of drives ?? []) Atomics.store(new Int32Array(d.active), 0, on ? 1 : 0);
}

/** A drive opened in this Worker: reads and writes at offsets, the maps as views. */
export class DriveFile {
  readonly drive: SharedDrive;
  readonly dirty: Uint8Array;
  readonly written: Uint8Array;
  readonly #bitmaps: DriveBitmaps;
  readonly #file: Deno.FsFile;
  /** The handle's file position (a seek is skipped where the position already is). */
  #pos = 0;

  /** Opens `drive`'s image for reading and writing. */
  constructor(drive: SharedDrive) {
    this.drive = drive;
    this.dirty = new Uint8Array(drive.dirty);
    this.written = new Uint8Array(drive.written);
    this.#bitmaps = bitmapsOf(drive);
    this.#file = Deno.openSync(drive.file, { read: true, write: true });
  }

  /** Blocks of the drive. */
  get blocks(): number {
    return this.dirty.length;
  }

  /** Reads `buf.length` bytes at `offset` (inside the image). */
  read(offset: number, buf: Uint8Array): void {
    this.#seek(offset);
    let done = 0;
    while (done < buf.length) {
      const n = this.#file.readSync(buf.subarray(done));
      if (n === null || n === 0) {
        this.#pos = -1; // unknown
        throw new Error(`drive ${this.drive.id}: short read at ${offset + done}`);
      }
      done += n;
      this.#pos += n;
    }
  }

  /** Writes `data` at `offset` (no marks: see {@link guestWrite}). */
  write(offset: number, data: Uint8Array): void {
    this.#seek(offset);
    let done = 0;
    while (done < data.length) {
      const n = this.#file.writeSync(data.subarray(done));
      done += n;
      this.#pos += n;
    }
  }

  #seek(offset: number): void {
    if (this.#pos === offset) return; // sequential: one syscall instead of two
    this.#pos = -1; // unknown until the seek returned
    this.#file.seekSync(offset, Deno.SeekMode.Start);
    this.#pos = offset;
  }

  /** A guest's write: the data, then the blocks it covers marked dirty and written. */
  guestWrite(offset: number, data: Uint8Array): void {
    this.write(offset, data);
    this.mark(offset, data.length);
  }

  /** Marks the blocks of [offset, offset + length) dirty, written and in every bitmap. */
  mark(offset: number, length: number): void {
    const first = Math.floor(offset / DISK_BLOCK);
    const last = Math.floor((offset + length - 1) / DISK_BLOCK);
    for (let b = first; b <= last; b++) {
      Atomics.store(this.written, b, 1);
      Atomics.store(this.dirty, b, 1);
    }
    this.#bitmaps.mark(first, last);
  }

  /** Flushes the image's data to the device (fdatasync). */
  sync(): void {
    this.#file.syncDataSync();
  }

  /** Flushes the image's data to the device (fdatasync) on a thread of the runtime's pool. */
  syncAsync(): Promise<void> {
    return this.#file.syncData();
  }

  /** Closes this Worker's handle. */
  close(): void {
    try {
      this.#file.close();
    } catch {
      /* closed already */
    }
  }
}

/** `GET /drives` and `GET /machine`'s `drives`: id, file, size and activity of each drive. */
export function drivesInfo(drives: readonly SharedDrive[]): DriveInfo[] {
  return drives.map((d) => ({
    id: d.id,
    file: d.file,
    size: d.size,
    active: driveActive(d),
    "dirty-bitmaps": bitmapsOf(d).list(),
  }));
}
