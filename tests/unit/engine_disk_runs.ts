/**
 * The disk section end to end without sockets: the source's DiskSection stages its frames into
 * a sink shaped like the page sender (1 MiB staging), each frame goes to a DiskSectionLoader,
 * and the destination's image must equal the source's. Runs are checked as the wire says:
 * consecutive marked blocks, at most 15 per frame (they fit staging with their headers), never
 * past the image; with zero-blocks a DISK_ZERO covers only all-zero blocks and a DISK_DATA
 * none. The loader writes extents on the runtime's pool while it reads the next run, so the
 * property mixes data and zero runs and record boundaries (settle) at random.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { DISK_BLOCK, prepareDrive, type SharedDrive } from "../../adapters/disk/drive.ts";
import { DiskSection } from "../../domain/engine/disk_section.ts";
import { DiskSectionLoader } from "../../domain/engine/disk_section_loader.ts";
import { STAGING_BYTES } from "../../domain/engine/staging.ts";
import { STAT } from "../../domain/engine/stats.ts";
import { DEFAULT_CAPABILITIES } from "../../domain/options.ts";
import type { FrameReader } from "../../domain/wire/frame_reader.ts";
import { DISK_HEADER_SIZE, FRAME_HEADER_SIZE, FrameType } from "../../domain/wire/frames.ts";

/** A reader over one frame's payload (what the loader asks of FrameReader). */
function readerOf(frame: Uint8Array): FrameReader {
  let off = FRAME_HEADER_SIZE;
  return {
    readPayload: () => Promise.resolve(frame.slice(off)),
    readInto: (target: Uint8Array) => {
      target.set(frame.subarray(off, off + target.length));
      off += target.length;
      return Promise.resolve();
    },
  } as unknown as FrameReader;
}

/** A frame's type, payload length and run (drive, offset, length) for DISK_DATA/DISK_ZERO. */
function runOf(frame: Uint8Array): { type: number; offset: number; length: number } {
  const v = new DataView(frame.buffer, frame.byteOffset + FRAME_HEADER_SIZE);
  return { type: frame[0], offset: Number(v.getBigUint64(2)), length: v.getUint32(10) };
}

/** Every frame a DiskSection over `drive` sends until its bulk phase is done. */
async function sourceFrames(drive: SharedDrive, zeroBlocks: boolean): Promise<{
  frames: Uint8Array[];
  transferred: number;
}> {
  const frames: Uint8Array[] = [];
  const stats = new Float64Array(128);
  const sender = {
    append: (f: Uint8Array) => (frames.push(f.slice()), Promise.resolve()),
    stage: (max: number, fill: (into: Uint8Array) => number) => {
      assert.ok(max <= STAGING_BYTES, `a frame of ${max} bytes does not fit staging`);
      const into = new Uint8Array(max);
      frames.push(into.slice(0, fill(into)));
      return Promise.resolve();
    },
  };
  const section = new DiskSection({
    caps: { ...DEFAULT_CAPABILITIES, block: true, "zero-blocks": zeroBlocks },
    incremental: false,
    sender,
    stats,
    checkErrors: () => {},
  }, [drive]);
  await section.setup();
  while (!await section.iterate()) { /* the next 8 MiB */ }
  section.cleanup();
  return { frames, transferred: stats[STAT.diskTransferred] };
}

/** Block `b`'s bytes of `img` (the last may be short). */
const blockOf = (img: Uint8Array, b: number) => img.subarray(b * DISK_BLOCK, (b + 1) * DISK_BLOCK);

Deno.test("disk runs: any image arrives equal, in runs of up to 15 blocks that keep zero blocks apart (property)", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const dir = Deno.makeTempDirSync();
  try {
    let n = 0;
    await fc.assert(
      fc.asyncProperty(
        // Each block: 0 all zero, 1 one byte set somewhere, 2 all random.
        fc.array(fc.integer({ min: 0, max: 2 }), { minLength: 1, maxLength: 40 }),
        fc.integer({ min: 0, max: DISK_BLOCK - 1 }), // bytes the last block lacks
        fc.boolean(),
        fc.array(fc.boolean(), { minLength: 1, maxLength: 16 }), // settle after frame i?
        async (kinds, short, zeroBlocks, settles) => {
          const size = kinds.length * DISK_BLOCK - short;
          const img = new Uint8Array(size);
          kinds.forEach((k, b) => {
            const block = blockOf(img, b);
            if (k === 1) block[(b * 7919) % block.length] = 1 + (b % 255);
            if (k === 2) crypto.getRandomValues(block);
          });
          n++;
          Deno.writeFileSync(`${dir}/src${n}.img`, img);
          const src = prepareDrive({ id: "disk0", file: `${dir}/src${n}.img`, size });
          const dst = prepareDrive({ id: "disk0", file: `${dir}/dst${n}.img`, size });
          // The destination's image starts as something else: every byte must be written.
          Deno.writeFileSync(`${dir}/dst${n}.img`, new Uint8Array(size).fill(0xee));
          const { frames, transferred } = await sourceFrames(src, zeroBlocks);
          assert.equal(transferred, size, "disk.transferred counts every byte once");
          assert.equal(frames[0][0], FrameType.DISK_CONFIG);
          const loader = new DiskSectionLoader([dst]);
          let next = 0;
          for (const [i, frame] of frames.entries()) {
            await loader.loadState(
              frame[0],
              frame.length - FRAME_HEADER_SIZE,
              readerOf(frame),
            );
            if (i === 0) continue;
            const run = runOf(frame);
            assert.equal(run.offset, next, "runs follow each other from block 0");
            next += run.length;
            const blocks = Math.ceil(run.length / DISK_BLOCK);
            assert.ok(blocks >= 1 && blocks <= 15, `a run of ${blocks} blocks`);
            assert.equal(run.offset % DISK_BLOCK, 0, "a run starts at a block");
            const covered = img.subarray(run.offset, run.offset + run.length);
            if (run.type === FrameType.DISK_ZERO) {
              assert.ok(zeroBlocks, "DISK_ZERO only with zero-blocks");
              assert.ok(covered.every((x) => x === 0), "a DISK_ZERO covers zero bytes only");
              assert.equal(frame.length, FRAME_HEADER_SIZE + DISK_HEADER_SIZE);
            } else {
              assert.equal(run.type, FrameType.DISK_DATA);
              assert.equal(frame.length, FRAME_HEADER_SIZE + DISK_HEADER_SIZE + run.length);
              for (let b = 0; b < blocks && zeroBlocks; b++) {
                const block = covered.subarray(b * DISK_BLOCK, (b + 1) * DISK_BLOCK);
                assert.ok(block.some((x) => x !== 0), "with zero-blocks, no zero block as data");
              }
            }
            if (settles[i % settles.length]) await loader.settle();
          }
          assert.equal(next, size, "the runs cover the image");
          await loader.flush();
          loader.loadCleanup();
          assert.deepEqual(Deno.readFileSync(`${dir}/dst${n}.img`), img, "images equal");
          assert.ok(new Uint8Array(dst.written).every((w) => w === 1), "every block marked");
        },
      ),
      { seed, numRuns: 40 },
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
