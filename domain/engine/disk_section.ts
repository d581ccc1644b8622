/**
 * The guest's drives as a live section (QEMU's "block" SaveVMHandlers, the seed's block
 * migration), registered when the migration has the `block` capability (`blk`/`inc`) and the
 * machine has drives. Setup sends the drive list (DISK_CONFIG) and marks what the bulk phase
 * sends: every block, or with `block-incremental` only the blocks written since the agent
 * started (the destination's image starts as the same base image). Passes send marked
 * blocks under the rate limit (DISK_DATA; with `zero-blocks` an all-zero block goes as
 * DISK_ZERO without its bytes); the exact figure fetches-and-clears the guest's dirty map, so
 * blocks written meanwhile go again; the completion sends the rest with the guest stopped.
 * The disk is not postcopyable: everything pending must move before the switchover.
 *
 * @module
 */
import { bitmapsOf, DISK_BLOCK, DriveFile, type SharedDrive } from "../../adapters/disk/drive.ts";
import { encodeDiskBitmap, MAX_BITMAP_RUN } from "../wire/disk_bitmap.ts";
import type { Capabilities } from "../options.ts";
import { encodeDiskConfig, encodeDiskDataHeader, encodeDiskZero } from "../wire/disk.ts";
import { DISK_HEADER_SIZE, FRAME_HEADER_SIZE, MAX_DISK_RUN } from "../wire/frames.ts";
import type { FrameSink, LiveSection, PendingBytes, StagingSink } from "./live_section.ts";
import { STAGING_BYTES } from "./staging.ts";
import { STAT } from "./stats.ts";

/** The disk section's wire identity (docs/wire-format.md, "Sections"). */
export const DISK_SECTION = { id: 4, name: "block", version: 2 } as const;

/** Blocks sent per iterate call (8 MiB, as RAM's chunk). */
const CHUNK_BLOCKS = 128;
/** Bytes ahead of a DISK_DATA run's data: the frame header and the run header. */
const DISK_DATA_HEAD = FRAME_HEADER_SIZE + DISK_HEADER_SIZE;
/**
 * Most blocks in one run: as many as fit the sender's staging buffer behind their headers
 * (15 blocks, 960 KiB). One frame per block (64 KiB) made each side do a read, a write and a
 * frame's work per block: measured 2026-12-07 (2 cores, bench D, a 256 MiB random image on the
 * host's disk, loopback TCP), 0.98–1.05 GB/s with a frame per block, 1.62–1.76 GB/s with runs,
 * against ~2.1 GB/s for a raw file→socket→file copy with 1 MiB reads.
 */
const RUN_BLOCKS = Math.min(
  Math.floor((STAGING_BYTES - DISK_DATA_HEAD) / DISK_BLOCK),
  MAX_DISK_RUN / DISK_BLOCK,
);

/** What the disk section uses of its session. */
export interface DiskSectionHost {
  readonly caps: Capabilities;
  /** `block-incremental`: send only the blocks written since the base. */
  readonly incremental: boolean;
  /** Where frames go (the session's page sender: rate-limited, counted). */
  readonly sender: StagingSink;
  readonly stats: Float64Array;
  /** Throws on cancel, a return-path error or a failed write. */
  checkErrors(): void;
}

/** One drive being migrated: its file, the blocks left to send, a cursor. */
interface DriveState {
  file: DriveFile;
  toSend: Uint8Array;
  pending: number;
  cursor: number;
}

/** The disk section (see the module doc). */
export class DiskSection implements LiveSection {
  readonly id = DISK_SECTION.id;
  readonly name = DISK_SECTION.name;
  readonly version = DISK_SECTION.version;
  readonly kind = "live" as const;
  readonly #host: DiskSectionHost;
  readonly #specs: readonly SharedDrive[];
  #drives: DriveState[] = [];

  /** The section of `drives`, driven through `host`. */
  constructor(host: DiskSectionHost, drives: readonly SharedDrive[]) {
    this.#host = host;
    this.#specs = drives;
  }

  /** Whether a migration with `caps` moves the drives: `block` on, and drives to move. */
  static applies(caps: Capabilities, drives: readonly SharedDrive[] | undefined): boolean {
    return caps.block && (drives?.length ?? 0) > 0;
  }

  /**
   * The drive list, then the bulk phase's marks: the guest's dirty map is cleared first (a
   * write after that marks it again), then every block — or only those written since the
   * base, incrementally.
   */
  async setup(): Promise<void> {
    const { stats, incremental } = this.#host;
    this.#drives = this.#specs.map((d) => {
      const file = new DriveFile(d);
      for (let b = 0; b < file.blocks; b++) Atomics.store(file.dirty, b, 0);
      const toSend = new Uint8Array(file.blocks);
      let pending = 0;
      for (let b = 0; b < file.blocks; b++) {
        if (!incremental || Atomics.load(file.written, b) === 1) {
          toSend[b] = 1;
          pending++;
        }
      }
      return { file, toSend, pending, cursor: 0 };
    });
    stats[STAT.diskActive] = 1;
    stats[STAT.diskTotal] = this.#specs.reduce((n, d) => n + d.size, 0);
    this.#publish();
    await this.#host.sender.append(encodeDiskConfig(
      this.#specs.map((d) => ({ id: d.id, size: d.size, blockSize: DISK_BLOCK })),
    ));
  }

  /** The blocks marked to send. */
  pendingEstimate(): PendingBytes {
    return this.#bytes();
  }

  /** Fetches-and-clears the guest's dirty map into the marks, then the blocks marked. */
  pendingExact(): PendingBytes {
    for (const d of this.#drives) {
      for (let b = 0; b < d.toSend.length; b++) {
        if (Atomics.load(d.file.dirty, b) === 1 && Atomics.exchange(d.file.dirty, b, 0) === 1) {
          if (d.toSend[b] === 0) {
            d.toSend[b] = 1;
            d.pending++;
          }
        }
      }
    }
    this.#publish();
    return this.#bytes();
  }

  /** Up to 8 MiB of marked blocks; true when none is left in this pass. */
  async iterate(): Promise<boolean> {
    let budget = CHUNK_BLOCKS;
    for (let k = 0; k < this.#drives.length && budget > 0; k++) {
      budget -= await this.#send(k, budget);
    }
    this.#publish();
    return this.#drives.every((d) => d.pending === 0);
  }

  /**
   * With the guest stopped: the last writes' marks, then every marked block; with
   * `dirty-bitmaps`, each drive's named bitmaps as they are now (DISK_BITMAP runs).
   */
  async completePrecopy(_out: FrameSink): Promise<void> {
    this.pendingExact();
    for (let k = 0; k < this.#drives.length; k++) {
      while (this.#drives[k].pending > 0) {
        await this.#send(k, CHUNK_BLOCKS);
        this.#host.checkErrors();
      }
    }
    this.#publish();
    if (this.#host.caps["dirty-bitmaps"]) await this.#sendBitmaps();
  }

  async #sendBitmaps(): Promise<void> {
    for (let k = 0; k < this.#drives.length; k++) {
      const bitmaps = bitmapsOf(this.#drives[k].file.drive);
      for (const { name } of bitmaps.list()) {
        const marks = bitmaps.read(name)!;
        for (let first = 0; first < marks.length; first += MAX_BITMAP_RUN) {
          const run = marks.subarray(first, first + MAX_BITMAP_RUN);
          await this.#host.sender.append(encodeDiskBitmap({ drive: k, name, first, marks: run }));
        }
      }
    }
  }

  /** Not postcopyable: its rest went with the guest stopped, before postcopy's package. */
  readonly finishesInPrecopy = true;

  /** Nothing to add to postcopy's package (see {@link finishesInPrecopy}). */
  completePostcopy(_out: FrameSink): Promise<void> {
    return Promise.resolve();
  }

  /** The drives' handles close. */
  cleanup(): void {
    for (const d of this.#drives) d.file.close();
  }

  /**
   * Sends up to `max` marked blocks of drive `k` from its cursor, in runs of consecutive
   * marked blocks (see {@link RUN_BLOCKS}); returns how many.
   */
  async #send(k: number, max: number): Promise<number> {
    const d = this.#drives[k];
    let sent = 0;
    while (sent < max && d.pending > 0) {
      // A block is marked somewhere (pending > 0): the next one from the cursor starts the run.
      while (d.toSend[d.cursor] === 0) d.cursor = (d.cursor + 1) % d.toSend.length;
      const first = d.cursor;
      const limit = Math.min(RUN_BLOCKS, max - sent, d.toSend.length - first);
      let count = 1;
      while (count < limit && d.toSend[first + count] === 1) count++;
      const n = await this.#sendRun(k, first, count);
      d.toSend.fill(0, first, first + n);
      d.pending -= n;
      sent += n;
      d.cursor = (first + n) % d.toSend.length;
    }
    return sent;
  }

  /**
   * One frame for blocks `first`.. of drive `k` (at most `count`), read straight into the
   * sender's staging buffer behind its header: a DISK_DATA run; with zero-blocks, the blocks
   * are read one by one and the run ends where a block's zero-ness changes (that block stays
   * marked), so a run of all-zero blocks goes as one DISK_ZERO without its bytes. Returns the
   * blocks it covered.
   */
  async #sendRun(k: number, first: number, count: number): Promise<number> {
    const d = this.#drives[k];
    const { caps, sender, stats } = this.#host;
    const size = d.file.drive.size;
    const offset = first * DISK_BLOCK;
    const bytes = (blocks: number) => Math.min(blocks * DISK_BLOCK, size - offset);
    let used = count;
    await sender.stage(DISK_DATA_HEAD + bytes(count), (into) => {
      const data = into.subarray(DISK_DATA_HEAD, DISK_DATA_HEAD + bytes(count));
      let zero = false;
      if (!caps["zero-blocks"]) d.file.read(offset, data);
      else {
        for (let i = 0; i < count; i++) {
          const block = data.subarray(i * DISK_BLOCK, bytes(i + 1));
          d.file.read(offset + i * DISK_BLOCK, block);
          const z = isZero(block);
          if (i === 0) zero = z;
          else if (z !== zero) {
            used = i;
            break;
          }
        }
      }
      const run = { drive: k, offset, length: bytes(used) };
      const head = zero ? encodeDiskZero(run) : encodeDiskDataHeader(run);
      into.set(head);
      return zero ? head.length : head.length + run.length;
    });
    stats[STAT.diskTransferred] += bytes(used);
    return used;
  }

  #bytes(): PendingBytes {
    const bytes = this.#drives.reduce((n, d) => n + d.pending, 0) * DISK_BLOCK;
    return { mustPrecopy: bytes, postcopyable: 0, wire: bytes };
  }

  #publish(): void {
    this.#host.stats[STAT.diskRemaining] = this.#bytes().mustPrecopy;
  }
}

/** The block is all zero bytes (it may start anywhere: behind its header in staging). */
function isZero(data: Uint8Array): boolean {
  const head = Math.min(data.length, (8 - (data.byteOffset % 8)) % 8);
  for (let i = 0; i < head; i++) if (data[i] !== 0) return false;
  if (head === data.length) return true; // shorter than its way to an 8-byte boundary
  const words = new BigUint64Array(
    data.buffer,
    data.byteOffset + head,
    (data.length - head) >>> 3,
  );
  for (let i = 0; i < words.length; i++) if (words[i] !== 0n) return false;
  for (let i = head + words.length * 8; i < data.length; i++) if (data[i] !== 0) return false;
  return true;
}
