/**
 * The destination's disk section ("block"): DISK_CONFIG names the source's drives, each of
 * which must be one of this agent's `--drive`s with the same id and size (else the stream is
 * refused naming the drive, before any byte is written); DISK_DATA and DISK_ZERO runs are
 * checked against those sizes (wire/disk.ts) and written through this Worker's own handle of
 * the image, and the blocks marked written (an incremental migration onward starts from
 * them). Consecutive DISK_DATA runs of a drive are read into one 1 MiB extent and written
 * with one write (at a record boundary, a gap, another drive or a full extent at the latest).
 * The write is synchronous, in this Worker: writing each extent on the runtime's thread pool
 * while the next run was read into a second buffer was measured slower (2026-12-07, 2 cores,
 * bench D on the host's disk: 1.30–1.32 GB/s against 1.62–1.76 GB/s, and more CPU): the
 * other core is the source's.
 *
 * Every byte is on the device before the destination reports `completed`: the completion
 * flushes the images (fdatasync; {@link DiskSectionLoader.flush}) once the guest runs here on
 * them (it runs on the page cache; only `completed` waits). Meanwhile, once 16 MiB were written
 * since the last flush began, a record boundary starts one on the runtime's thread pool while
 * the stream goes on (one at a time), so the device writes while the next records arrive and
 * the last flush has less to wait for. (It used to flush synchronously at every record
 * boundary after writes: the stream stopped for each.)
 *
 * @module
 */
import { bitmapsOf, DISK_BLOCK, DriveFile, type SharedDrive } from "../../adapters/disk/drive.ts";
import { decodeDiskConfig, decodeDiskRun, type WireDrive } from "../wire/disk.ts";
import { decodeDiskBitmap } from "../wire/disk_bitmap.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { DISK_HEADER_SIZE, FrameType, MAX_DISK_RUN } from "../wire/frames.ts";
import { WireError } from "../wire/wire_error.ts";
import { DISK_SECTION } from "./disk_section.ts";
import { frameRefused, notSentWhole, type SectionLoader } from "./live_section.ts";

/** Bytes written after which a record boundary starts a flush (see the module doc). */
const SYNC_EVERY = 16 << 20;
/** Bytes of consecutive runs written with one write. */
const EXTENT_BYTES = 1 << 20;

const FRAME_NAMES: Record<number, string> = {
  [FrameType.DISK_ZERO]: "DISK_ZERO",
  [FrameType.DISK_BITMAP]: "DISK_BITMAP",
};

/** The disk section's loader (see the module doc). */
export class DiskSectionLoader implements SectionLoader {
  readonly id = DISK_SECTION.id;
  readonly name = DISK_SECTION.name;
  readonly version = DISK_SECTION.version;
  readonly kind = "live" as const;
  readonly #local: readonly SharedDrive[];
  /** The stream's drives, in its DISK_CONFIG's order, once it came. */
  #files: DriveFile[] | null = null;
  /** The DISK_CONFIG's drives, as the stream named them. */
  #wire: WireDrive[] = [];
  /** The bitmaps this stream has made so far ("drive/name"). */
  readonly #bitmaps = new Set<string>();
  readonly #head = new Uint8Array(DISK_HEADER_SIZE);
  /** Consecutive runs not yet written: their drive, where they start, how many bytes. */
  #extent: { file: DriveFile; offset: number; length: number } | null = null;
  #extentBuf: Uint8Array | null = null;
  #zero: Uint8Array | null = null;
  /** Bytes written since the last fdatasync began. */
  #unsynced = 0;
  /** The fdatasync under way, if any. */
  #syncing: Promise<void> | null = null;
  /** How the last fdatasync failed (reported at the next settle or flush). */
  #syncError: unknown = null;

  /** Loads into this agent's `drives`. */
  constructor(drives: readonly SharedDrive[]) {
    this.#local = drives;
  }

  /** Every version up to this agent's loads the same way. */
  loadSetup(): void {}

  /** One frame of the open "block" record. */
  async loadState(type: number, length: number, reader: FrameReader): Promise<void> {
    switch (type) {
      case FrameType.DISK_CONFIG:
        this.#config(await reader.readPayload());
        return;
      case FrameType.DISK_DATA: {
        const files = this.#need(type);
        await reader.readInto(this.#head);
        const run = decodeDiskRun(this.#head, type, length, files.map((f) => f.drive));
        const file = files[run.drive];
        this.#extentBuf ??= new Uint8Array(EXTENT_BYTES);
        let e = this.#extent;
        if (
          e && (e.file !== file || e.offset + e.length !== run.offset ||
            e.length + run.length > EXTENT_BYTES)
        ) {
          this.#writeExtent();
          e = null;
        }
        e ??= this.#extent = { file, offset: run.offset, length: 0 };
        await reader.readInto(this.#extentBuf.subarray(e.length, e.length + run.length));
        e.length += run.length;
        return;
      }
      case FrameType.DISK_ZERO: {
        const files = this.#need(type);
        const payload = await reader.readPayload();
        const run = decodeDiskRun(payload, type, length, files.map((f) => f.drive));
        this.#writeExtent();
        this.#zero ??= new Uint8Array(MAX_DISK_RUN);
        this.#write(files[run.drive], run.offset, this.#zero.subarray(0, run.length));
        return;
      }
      case FrameType.DISK_BITMAP: {
        const files = this.#need(type);
        const run = decodeDiskBitmap(await reader.readPayload(), this.#wire);
        const file = files[run.drive];
        const bitmaps = bitmapsOf(file.drive);
        const key = `${run.drive}/${run.name}`;
        // The first run of a name makes the bitmap afresh (replacing one of that name here).
        if (!this.#bitmaps.has(key)) {
          if (!bitmaps.put(run.name, new Uint8Array(file.blocks))) {
            throw new WireError(
              `block migration: drive '${file.drive.id}' has no room for dirty bitmap ` +
                `'${run.name}'`,
            );
          }
          this.#bitmaps.add(key);
        }
        bitmaps.setRun(run.name, run.first, run.marks);
        return;
      }
      default:
        throw frameRefused(this.name, type);
    }
  }

  /** A full record for a live section is refused. */
  loadFull(): void {
    throw notSentWhole(this.name);
  }

  /**
   * A record boundary: the extent is written; after 16 MiB of writes an fdatasync of the
   * images begins unless one is under way (a later boundary starts it then); the stream does
   * not wait for it.
   */
  settle(): Promise<void> {
    this.#throwSyncError();
    this.#writeExtent();
    if (this.#unsynced >= SYNC_EVERY && this.#files && this.#syncing === null) {
      const files = this.#files;
      this.#unsynced = 0;
      this.#syncing = Promise.all(files.map((f) => f.syncAsync())).then(
        () => {
          this.#syncing = null;
        },
        (e) => {
          this.#syncing = null;
          this.#syncError = e;
        },
      );
    }
    return Promise.resolve();
  }

  /** Before `completed`: the fdatasync under way ends, then one more covers what was written since. */
  async flush(): Promise<void> {
    this.#writeExtent();
    await this.#syncing;
    this.#throwSyncError();
    if (this.#unsynced > 0 && this.#files) {
      for (const f of this.#files) await f.syncAsync();
      this.#unsynced = 0;
    }
  }

  #throwSyncError(): void {
    if (this.#syncError !== null) {
      const e = this.#syncError;
      this.#syncError = null;
      throw new Error(
        `block migration: flushing the image failed: ${e instanceof Error ? e.message : e}`,
      );
    }
  }

  /** The images' handles close. */
  loadCleanup(): void {
    for (const f of this.#files ?? []) f.close();
  }

  /** The source's drives: each must be here with the same size; opened for writing. */
  #config(payload: Uint8Array): void {
    if (this.#files) throw new WireError("migration stream: a second DISK_CONFIG");
    const wanted = decodeDiskConfig(payload);
    const seen = new Set<string>();
    const drives = wanted.map((w) => {
      if (seen.has(w.id)) throw new WireError(`block migration: drive '${w.id}' named twice`);
      seen.add(w.id);
      if (w.blockSize !== DISK_BLOCK) {
        throw new WireError(
          `block migration: drive '${w.id}' has blocks of ${w.blockSize} bytes, this agent ` +
            `uses ${DISK_BLOCK}`,
        );
      }
      const d = this.#local.find((x) => x.id === w.id);
      if (!d) {
        throw new WireError(
          `block migration: no drive '${w.id}' here (start the destination with ` +
            `--drive id=${w.id},file=PATH,size=${w.size})`,
        );
      }
      if (d.size !== w.size) {
        throw new WireError(
          `block migration: drive '${w.id}' has ${d.size} bytes here, the source's ${w.size}`,
        );
      }
      return d;
    });
    this.#files = drives.map((d) => new DriveFile(d));
    this.#wire = wanted;
  }

  #need(type: number): DriveFile[] {
    if (!this.#files) {
      throw new WireError(
        `migration stream: ${FRAME_NAMES[type] ?? "DISK_DATA"} before DISK_CONFIG`,
      );
    }
    return this.#files;
  }

  /** Writes the runs held in the extent, if any. */
  #writeExtent(): void {
    const e = this.#extent;
    if (e === null) return;
    this.#extent = null;
    this.#write(e.file, e.offset, this.#extentBuf!.subarray(0, e.length));
  }

  #write(file: DriveFile, offset: number, data: Uint8Array): void {
    file.write(offset, data);
    const last = Math.floor((offset + data.length - 1) / DISK_BLOCK);
    for (let b = Math.floor(offset / DISK_BLOCK); b <= last; b++) {
      Atomics.store(file.written, b, 1);
    }
    this.#unsynced += data.length;
  }
}
