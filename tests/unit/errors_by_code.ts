/**
 * Issue 18, errors by code, not text: link, protocol, cancel and peer errors are typed, and
 * no decision in domain/ reads an error's message. A protocol error whose text happens to say
 * "closed" or "truncated" fails a running postcopy instead of pausing it.
 */
import assert from "node:assert/strict";
import { memoryChannelPair } from "../../adapters/channels/memory_pair.ts";
import { ChannelShutdownError } from "../../adapters/channels/channel_writer.ts";
import { ChannelClosedError, ConnectionLostError } from "../../adapters/channels/errors.ts";
import { Machine } from "../../adapters/memory/machine.ts";
import { Cancelled } from "../../domain/engine/cancelled.ts";
import {
  failureKind,
  failureRecord,
  LinkError,
  PeerError,
  TypedFailure,
} from "../../domain/engine/failure.ts";
import { encodeGlobalState, FrameType, WireError } from "../../domain/wire/mod.ts";
import { concat } from "../helpers/bytes.ts";
import { loadStream } from "../helpers/engine_pair.ts";
import { HOSTILE_LAYOUT, validFrames } from "../helpers/hostile_streams.ts";

Deno.test("errors by code: each failure's kind comes from its type and code, not its text", () => {
  const cases: [unknown, string][] = [
    [new Cancelled(), "cancel"],
    [new WireError("migration stream: unknown runstate 'closed'"), "protocol"],
    [new WireError("RP: return path closed", "truncated"), "link"],
    [new WireError("anything at all", "truncated"), "link"],
    [new LinkError("timeout", "no answer"), "link"],
    [new ChannelShutdownError(), "link"],
    [new ChannelClosedError(), "link"],
    [new ConnectionLostError("Connection reset by peer"), "link"],
    [new Deno.errors.ConnectionReset("Connection reset by peer (os error 104)"), "link"],
    [new Deno.errors.BrokenPipe("Broken pipe (os error 32)"), "link"],
    [new PeerError(1, "RP: Sibling indicated error 1"), "peer"],
    [new Error("connection closed, stream truncated"), "local"],
    ["a string", "local"],
  ];
  for (const [e, kind] of cases) assert.equal(failureKind(e), kind, String(e));
  // Across a Worker boundary the kind travels with the text.
  for (const [e, kind] of cases) {
    const r = failureRecord(e);
    assert.equal(failureKind(new TypedFailure(r.kind, r.message)), kind);
  }
});

Deno.test("errors by code: no decision in domain/ reads an error's message text", async () => {
  const offences: string[] = [];
  // A message passed on is fine (`message: e.message`); testing it is not.
  const reads = [
    /\.test\([^)]*\.message/,
    /\.message\s*\.\s*(match|includes|startsWith|endsWith|search|indexOf)\(/,
    /\.message\s*[!=]==?/,
    /[!=]==?\s*[\w.]*\.message\b/,
    /\bmatch\([^)]*\.message/,
  ];
  async function walk(dir: URL): Promise<void> {
    for await (const entry of Deno.readDir(dir)) {
      const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
      if (entry.isDirectory) await walk(url);
      else if (entry.name.endsWith(".ts")) {
        const lines = (await Deno.readTextFile(url)).split("\n");
        lines.forEach((line, i) => {
          if (reads.some((re) => re.test(line))) offences.push(`${url.pathname}:${i + 1}: ${line}`);
        });
      }
    }
  }
  await walk(new URL("../../domain/", import.meta.url));
  assert.deepEqual(offences, []);
});

Deno.test("errors by code: a protocol error saying 'closed' fails a running postcopy, it does not pause", async () => {
  const dst = await Machine.create({
    blocks: HOSTILE_LAYOUT.map((b) => ({ ...b })),
    fill: "zero",
    workload: { kind: "idle" },
    startPaused: true,
    incoming: true,
  });
  try {
    for (const runstate of ["closed", "truncated"]) {
      const f = validFrames({ postcopy: true });
      const at = f.findIndex((x) => x[0] === FrameType.PACKAGED) + 1;
      // After the package the guest runs here; then a GLOBAL_STATE no runstate is called.
      f.splice(at, 0, encodeGlobalState(runstate));
      const [a, b] = memoryChannelPair(256 << 10);
      const { main: d, done: run } = loadStream(dst, b);
      const bytes = concat(f);
      const writing = (async () => {
        try {
          for (let off = 0; off < bytes.length;) off += await a.write(bytes.subarray(off));
          await a.closeWrite();
        } catch { /* the loader stopped reading */ }
      })();
      assert.equal(await run, false);
      a.close();
      await writing;
      assert.deepEqual(d.seen, ["setup", "active", "postcopy-active", "failed"], runstate);
      assert.match(d.errors.join("; "), new RegExp(`unknown runstate '${runstate}'`));
      dst.vcpu.setRunstate("paused");
      dst.vcpu.endSnapshot();
      dst.vcpu.setRunstate("inmigrate");
    }
  } finally {
    await dst.dispose();
  }
});
