/**
 * Codec Workers for a data-path Worker's pools are started by the main thread and reach
 * the pool as ports (a Worker nested in a Worker takes ~1 s to start in Deno 2.9). The
 * protocol, with this thread playing both sides: jobs posted before the ports arrive run
 * once they do, in order; closing the pool releases exactly its Workers; a codec Worker that
 * dies fails its pool with a message instead of leaving it waiting.
 */
import assert from "node:assert/strict";
import {
  type CodecAnswer,
  type CodecRequest,
  useParentCodecThreads,
} from "../../domain/codecs/codec_threads.ts";
import { CodecSpawner } from "../../domain/codecs/codec_spawner.ts";
import { CompressPool } from "../../domain/codecs/compress_pool.ts";
import { DecompressPool } from "../../domain/codecs/decompress_pool.ts";
import { PAGE, textPage } from "../codec_helpers.ts";

/** This thread as a data-path Worker whose "main thread" answers after `delayMs`. */
function loopback(spawner: CodecSpawner, delayMs = 0) {
  const requests: CodecRequest[] = [];
  let answer: (m: CodecAnswer) => boolean = () => false;
  answer = useParentCodecThreads((m) => {
    requests.push(m);
    if (m.t === "codec-release") return spawner.stop(m.id);
    setTimeout(() =>
      spawner.start(
        m.id,
        m.threads,
        (ports) => answer({ t: "codec-ports", id: m.id, ports }),
        (message) => answer({ t: "codec-crash", id: m.id, message }),
      ), delayMs);
  });
  return requests;
}

Deno.test("codec threads from the main thread: queued jobs run once the ports come, close releases them", async () => {
  const spawner = new CodecSpawner();
  const requests = loopback(spawner, 50);
  const cp = new CompressPool(2, 1, { maxBatch: 4 });
  const dp = new DecompressPool(3, { maxBatch: 4 });
  try {
    const batch = new Uint8Array(4 * PAGE);
    for (let k = 0; k < 4; k++) batch.set(textPage(k), k * PAGE);
    // Submitted before any port exists: they wait, then come back in order.
    const streams = await Promise.all([cp.compress(batch, 4), cp.compress(batch, 2)]);
    assert.deepEqual(await dp.decompress(streams[0], 4), batch);
    assert.deepEqual(await dp.decompress(streams[1], 2), batch.subarray(0, 2 * PAGE));
    assert.deepEqual(
      requests.map((r) => r.t === "codec-request" ? r.threads : -1),
      [2, 3],
      "one request per pool, for its thread count",
    );
    assert.equal(spawner.running, 5);
  } finally {
    cp.close();
    dp.close();
  }
  assert.deepEqual(requests.slice(2).map((r) => r.t), ["codec-release", "codec-release"]);
  assert.equal(spawner.running, 0, "every codec Worker stopped");
});

Deno.test("codec threads from the main thread: a crashed codec Worker fails its pool", async () => {
  const spawner = new CodecSpawner();
  let answer: (m: CodecAnswer) => boolean = () => false;
  answer = useParentCodecThreads((m) => {
    if (m.t === "codec-release") return spawner.stop(m.id);
    // Hand the pool a port whose Worker end is a script that throws on its first job.
    const blob = new Blob(
      [`self.onmessage = (e) => { e.data.port.onmessage = () => { throw new Error("boom"); }; };`],
      { type: "text/javascript" },
    );
    const w = new Worker(URL.createObjectURL(blob), { type: "module" });
    const mc = new MessageChannel();
    w.postMessage({ t: "port", port: mc.port1 }, [mc.port1]);
    w.onerror = (e) => {
      e.preventDefault();
      w.terminate();
      answer({ t: "codec-crash", id: m.id, message: e.message });
    };
    answer({ t: "codec-ports", id: m.id, ports: [mc.port2] });
  });
  const cp = new CompressPool(1, 1, { maxBatch: 1 });
  try {
    await assert.rejects(cp.compress(new Uint8Array(PAGE), 1), /codec worker crashed: .*boom/);
  } finally {
    cp.close();
  }
});
