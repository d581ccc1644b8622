/**
 * Issue 6, hostile streams against the destination's loader itself (runDestination in this
 * thread over an in-memory channel, a real guest, a state machine standing in for the main
 * thread): thousands of mutated valid streams either still load (the mutation kept them
 * valid) or fail that attempt with one clear error, never run the guest, never hang, and
 * leave the loader ready for the next stream. (Memory is measured on a real agent process
 * in hostile_stream_test.ts: this process's own garbage would swamp it here.)
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { encodeGlobalState, FrameType } from "../../domain/wire/mod.ts";
import { encodeEmpty, encodePackage, encodeU32Frame } from "../../domain/wire/postcopy.ts";
import { loadStream } from "../helpers/engine_pair.ts";
import {
  applyMutation,
  assertClearError,
  describeMutation,
  deviceRecord,
  hostileDestination,
  idleDeviceState,
  mutationArb,
  validFrames,
} from "../helpers/hostile_streams.ts";
import { concat } from "../helpers/bytes.ts";

const seed = Date.now();
console.log("fast-check seed", seed);

const FAILED_PREFIX = "load of migration failed: ";

/** What one load did. */
interface Load {
  ok: boolean;
  seen: string[];
  errors: string[];
}

/**
 * Loads `bytes` into `dst` (the stream then ends); a run that would wait for a recovery
 * channel gets none. Rejects if the loader does not finish within `timeoutMs`.
 */
async function load(dst: Machine, bytes: Uint8Array, timeoutMs = 15_000): Promise<Load> {
  const [a, b] = memoryChannelPair(256 << 10);
  const { main: d, done: run } = loadStream(dst, b);
  const writing = (async () => {
    try {
      for (let off = 0; off < bytes.length;) off += await a.write(bytes.subarray(off));
      await a.closeWrite();
    } catch { /* the loader stopped reading */ }
  })();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const ok = await Promise.race([
      run,
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new Error(`loader still busy after ${timeoutMs} ms`)),
          timeoutMs,
        );
      }),
    ]);
    return { ok, seen: d.seen, errors: d.errors };
  } finally {
    clearTimeout(timer);
    a.close();
    b.close();
    await writing;
  }
}

/** After a load that started the guest, puts the destination back to waiting. */
function rearm(dst: Machine): void {
  if (dst.runstate === "inmigrate") return;
  dst.vcpu.setRunstate("paused");
  dst.vcpu.endSnapshot();
  dst.vcpu.setRunstate("inmigrate");
}

/** The one "load of migration failed" message of a failed load. */
function failure(r: Load): string {
  const f = r.errors.filter((e) => e.startsWith(FAILED_PREFIX));
  assert.equal(f.length, 1, `one failure message: ${JSON.stringify(r.errors)}`);
  return f[0].slice(FAILED_PREFIX.length);
}

Deno.test("hostile loader: the valid base streams load (so failures below are the mutations')", async () => {
  const dst = await hostileDestination();
  try {
    for (const shape of [{}, { returnPath: true }, { postcopy: true }]) {
      const r = await load(dst, concat(validFrames(shape)));
      assert.equal(r.ok, true, `${JSON.stringify(shape)}: ${r.errors.join("; ")}`);
      assert.equal(r.seen.at(-1), "completed");
      rearm(dst);
    }
  } finally {
    await dst.dispose();
  }
});

Deno.test("hostile loader: mutated streams fail that attempt clearly, never run the guest, never hang", async () => {
  const bases = [
    validFrames(),
    validFrames({ returnPath: true }),
    validFrames({ postcopy: true }),
    validFrames({ eof: false }),
  ];
  const dst = await hostileDestination();
  const tally = { failed: 0, loaded: 0, paused: 0 };
  try {
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: bases.length - 1 }), mutationArb, async (which, m) => {
        const what = `base ${which}, ${describeMutation(m)}`;
        const r = await load(dst, applyMutation(bases[which], m, false));
        if (r.ok) {
          assert.equal(r.seen.at(-1), "completed", what);
          tally.loaded++;
        } else {
          assert.equal(r.seen.at(-1), "failed", `${what}: ${r.seen}`);
          assertClearError(failure(r), what);
          if (r.seen.includes("postcopy-paused")) {
            // A pause (waiting for a recovery) only once the guest runs here.
            assert.notEqual(dst.runstate, "inmigrate", `${what}: paused before POSTCOPY_RUN`);
            tally.paused++;
          }
          // Before postcopy the guest never runs here: it stays waiting for a migration.
          if (!r.seen.includes("postcopy-active")) assert.equal(dst.runstate, "inmigrate", what);
          tally.failed++;
        }
        rearm(dst);
      }),
      // The mass run (10 000 streams, a Worker pool) is unit/hostile_pool.ts; these load the
      // full-size guest.
      { seed, numRuns: 300 },
    );
    // The next honest stream still loads after all that.
    const r = await load(dst, concat(validFrames()));
    assert.equal(r.ok, true, r.errors.join("; "));
  } finally {
    await dst.dispose();
  }
  console.log(`loads: ${JSON.stringify(tally)}`);
  assert.ok(tally.failed > 200, "most mutations break the stream");
});

/** A postcopy stream cut right after its package (whose frames are `pkg`). */
function postcopyUpTo(pkg: Uint8Array[]): Uint8Array {
  const f = validFrames({ postcopy: true, eof: false });
  const at = f.findIndex((x) => x[0] === FrameType.PACKAGED);
  return concat([...f.slice(0, at), encodePackage(pkg)]);
}

Deno.test("hostile loader: a stream ending after POSTCOPY_LISTEN, before POSTCOPY_RUN, fails without pausing", async () => {
  // QEMU pauses an incoming postcopy only once it is running (POSTCOPY_INCOMING_RUNNING):
  // before RUN the guest never ran here and the source still has it, so the attempt fails.
  const dst = await hostileDestination();
  try {
    const r = await load(dst, postcopyUpTo([encodeEmpty(FrameType.POSTCOPY_LISTEN)]));
    assert.equal(r.ok, false);
    assert.deepEqual(r.seen, ["setup", "active", "postcopy-active", "failed"], r.errors.join("; "));
    assert.match(failure(r), /truncated/);
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await dst.dispose();
  }
});

Deno.test("hostile loader: a malformed device state in the postcopy package fails, it does not pause", async () => {
  const device = idleDeviceState();
  device[0] ^= 0xff; // bad magic
  const dst = await hostileDestination();
  try {
    const r = await load(
      dst,
      postcopyUpTo([
        encodeEmpty(FrameType.POSTCOPY_LISTEN),
        encodeGlobalState("running"),
        deviceRecord(device),
        encodeU32Frame(FrameType.PING, 3),
        encodeEmpty(FrameType.POSTCOPY_RUN),
      ]),
    );
    assert.equal(r.ok, false);
    assert.match(failure(r), /^device state: bad magic/);
    assert.ok(!r.seen.includes("postcopy-paused"), `a protocol error, not a link error: ${r.seen}`);
    assert.equal(dst.runstate, "inmigrate");
  } finally {
    await dst.dispose();
  }
});

Deno.test("hostile loader: RAM runs outside any section are refused (wire-format order)", async () => {
  // docs/wire-format.md: "RAM runs appear only inside a section" and "the engine enforces
  // the order above". Here: every run sent with no section open.
  const f = validFrames().filter((x) =>
    x[0] !== FrameType.SECTION_START && x[0] !== FrameType.SECTION_END
  );
  const dst = await hostileDestination();
  try {
    const r = await load(dst, concat(f));
    assert.equal(r.ok, false, "a stream with runs outside every section loaded");
    assertClearError(failure(r), "runs outside a section");
    assert.equal(dst.runstate, "inmigrate");
    // The same runs inside sections load.
    rearm(dst);
    const again = await load(dst, concat(validFrames()));
    assert.equal(again.ok, true, again.errors.join("; "));
  } finally {
    await dst.dispose();
  }
});

Deno.test("hostile loader: an encoded page longer than 64 KiB is refused at its frame header", async () => {
  // Such a payload cannot be read whole through the reader's buffer: it must be refused as
  // a frame length, not end in the reader's programming error ("readPayload() on …").
  const dst = await hostileDestination();
  try {
    for (const [type, name] of [[0x20, "XBZRLE_PAGE"], [0x21, "COMPRESSED_PAGE"]] as const) {
      for (const length of [65537, 65542, 131078]) {
        const f = validFrames();
        const at = f.findIndex((x) => x[0] === FrameType.ZERO_RUN);
        const frame = new Uint8Array(5);
        frame[0] = type;
        new DataView(frame.buffer).setUint32(1, length);
        const r = await load(dst, concat([...f.slice(0, at), frame, ...f.slice(at)]));
        assert.equal(r.ok, false);
        assert.equal(
          failure(r),
          `frame ${name} payload length ${length} exceeds the maximum 65536`,
        );
      }
    }
  } finally {
    await dst.dispose();
  }
});
