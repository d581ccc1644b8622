/**
 * A destination's multifd receive threads in one process, over real unix sockets: the pool
 * redirects a page channel to a receive Worker, the channel's JOIN reaches the registry, the
 * run's receiver has that thread read pages straight into guest RAM and pass the barrier; and
 * when a thread dies, the run's channels fail with the reason (the migration fails, nothing
 * waits forever).
 */
import assert from "node:assert/strict";
import { allocateGuest } from "../../adapters/memory/guest_ram.ts";
import { listenChannel } from "../../adapters/channels/listen.ts";
import { MultifdRegistry } from "../../domain/engine/multifd_dest.ts";
import { ReceivePool, type RxSpawn } from "../../domain/engine/multifd_rx_pool.ts";
import { MultifdReceiver } from "../../domain/engine/multifd_receiver.ts";
import { RamLoader } from "../../domain/engine/ram_loader.ts";
import { createStats, STAT } from "../../domain/engine/stats.ts";
import { FrameReader } from "../../domain/wire/frame_reader.ts";
import { encodePageRun, encodeStreamHeader, FrameType } from "../../domain/wire/mod.ts";
import { decodeHello, encodeHello, encodeJoin, encodeJoined } from "../../domain/wire/multifd.ts";
import { encodeU32Frame } from "../../domain/wire/postcopy.ts";
import { readRedirect } from "../../domain/engine/multifd_redirect.ts";
import { ConnChannel } from "../../adapters/channels/conn_channel.ts";
import { concat } from "../helpers/bytes.ts";

const RX_WORKER = new URL("../../domain/engine/multifd_rx_worker.ts", import.meta.url);

/** Receive Workers started here, as the main thread would; `crash` reports one dead. */
function localSpawn(): { spawn: RxSpawn; crash: (m: string) => void; workers: Worker[] } {
  const workers: Worker[] = [];
  let onCrash: (m: string) => void = () => {};
  const spawn: RxSpawn = (threads, crashed) => {
    onCrash = crashed;
    const ports = Array.from({ length: threads }, () => {
      const w = new Worker(RX_WORKER, { type: "module" });
      const mc = new MessageChannel();
      w.postMessage({ t: "port", port: mc.port1 }, [mc.port1]);
      workers.push(w);
      return mc.port2;
    });
    return { ports: Promise.resolve(ports), release: () => workers.forEach((w) => w.terminate()) };
  };
  return { spawn, crash: (m) => onCrash(m), workers };
}

Deno.test("multifd receive threads: a redirected channel is read into RAM by its thread; a thread that dies fails the run", async () => {
  const dir = await Deno.makeTempDir();
  const listener = await listenChannel(`unix:${dir}/in.sock`);
  const registry = new MultifdRegistry();
  const local = localSpawn();
  const pool = new ReceivePool(listener.uri, registry, local.spawn);
  const guest = allocateGuest([{ name: "pc.ram", size: 1 << 20 }], { snapshot: false });
  const uuid = crypto.getRandomValues(new Uint8Array(16));
  let joined: Deno.Conn | null = null;
  let rx: MultifdReceiver | null = null;
  try {
    // The source's side: HELLO on the incoming socket, then the incoming Worker's side of it.
    const first = new ConnChannel(
      await Deno.connect({ transport: "unix", path: `${dir}/in.sock` }),
    );
    await first.write(concat([
      encodeStreamHeader("multifd"),
      encodeHello({ uuid, id: 0, channels: 1, redirectable: true }),
    ]));
    const accepted = await listener.accept();
    const reader = new FrameReader(accepted);
    assert.equal(await reader.readStreamHeader(null), "multifd");
    assert.equal((await reader.next()).type, FrameType.MULTIFD_HELLO);
    const hello = decodeHello(await reader.readPayload());
    assert.equal(await pool.answer(hello, accepted), true, "redirected to a thread");
    const redirect = await readRedirect(first, 5000);
    first.close();
    assert.match(redirect.address, new RegExp(`^unix:${dir}/in\\.sock\\.rx\\d$`));

    // The channel opens again at the thread, names itself with the token; the run claims it.
    joined = await Deno.connect({
      transport: "unix",
      path: redirect.address.slice("unix:".length),
    });
    await joined.write(concat([encodeStreamHeader("multifd"), encodeJoin(redirect.token)]));
    const [channel] = await registry.claim(uuid, 1, 10_000);
    // The thread answers with the redirect's answer before any page goes.
    const ack = new Uint8Array(21);
    for (let off = 0; off < ack.length;) off += (await joined.read(ack.subarray(off)))!;
    assert.deepEqual(ack, encodeJoined(redirect.answer));
    assert.equal(channel.reader, null, "read by its thread, not here");
    const stats = createStats();
    const ram = new RamLoader(guest, stats);
    let failed = 0;
    rx = new MultifdReceiver([channel], ram, stats, () => failed++, guest);

    // Pages of pass 1 land in this process's guest RAM, read by the thread.
    const page = new Uint8Array(4096).map((_, i) => (i * 7 + 3) & 0xff);
    await joined.write(concat([
      encodePageRun(0, 5, 4096, page),
      encodeU32Frame(FrameType.MULTIFD_SYNC, 1),
    ]));
    await rx.mainSync(1, 10_000);
    assert.deepEqual(new Uint8Array(guest.ram[0], 5 * 4096, 4096), page);
    assert.equal(stats[STAT.normal], 1, "the thread's page is counted in the run's");
    assert.ok(stats[STAT.multifdBytes] > 4096);

    // The thread dies: the run's channel fails with why, the barrier does not wait on.
    local.crash("out of memory");
    await assert.rejects(
      rx.mainSync(2, 10_000),
      (e: unknown) => e instanceof Error && /receive thread crashed: out of memory/.test(e.message),
    );
    assert.equal(failed, 1, "the run is told once (it closes its main stream)");
  } finally {
    rx?.close();
    joined?.close();
    pool.close();
    registry.close();
    listener.close();
    for (const w of local.workers) w.terminate();
    await Deno.remove(dir, { recursive: true });
  }
});
