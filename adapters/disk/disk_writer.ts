/**
 * The synthetic vCPU's disk writes (`--workload ...,disk=RATE`): in the vCPU Worker, between
 * workload chunks, it writes 4 KiB of fresh bytes at a random 4 KiB-aligned offset of a
 * random drive, at most RATE times a second, marking the block dirty after the data
 * (DriveFile.guestWrite), so a block migration resends it. The vCPU parks only between
 * chunks, so no write is under way while the guest is stopped; it writes only to an active
 * drive.
 *
 * @module
 */
import { driveActive, DriveFile, type SharedDrive } from "./drive.ts";

/** Bytes of one synthetic disk write. */
export const DISK_WRITE_BYTES = 4096;

/** A vCPU's disk writer over the drives it opened. */
export class DiskWriter {
  readonly #drives: DriveFile[];
  readonly #intervalMs: number;
  readonly #buf = new Uint8Array(DISK_WRITE_BYTES);
  #next = 0;
  /** Writes done. */
  writes = 0;

  /** Opens `drives` in this Worker; writes at most `rate` times a second. */
  constructor(drives: readonly SharedDrive[], rate: number) {
    this.#drives = drives.map((d) => new DriveFile(d));
    this.#intervalMs = 1000 / rate;
  }

  /** Writes what is due at `now` (ms, performance.now()): at most 64 writes at once. */
  tick(now: number): void {
    if (this.#drives.length === 0) return;
    this.#next = Math.max(this.#next, now - 64 * this.#intervalMs);
    while (this.#next <= now) {
      this.#next += this.#intervalMs;
      this.#writeOne();
    }
  }

  #writeOne(): void {
    const drive = this.#drives[Math.floor(Math.random() * this.#drives.length)];
    if (!driveActive(drive.drive)) return; // an inactive image is not this guest's to write
    const slots = drive.drive.size / DISK_WRITE_BYTES;
    const offset = Math.floor(Math.random() * slots) * DISK_WRITE_BYTES;
    crypto.getRandomValues(this.#buf);
    drive.guestWrite(offset, this.#buf);
    this.writes++;
  }

  /** Closes the drives. */
  close(): void {
    for (const d of this.#drives) d.close();
  }
}
