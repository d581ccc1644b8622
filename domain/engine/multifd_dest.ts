/**
 * The destination's multifd side: page channels introduce themselves (HELLO with the
 * migration's uuid and their id) and wait here until the main stream announces the same
 * uuid (MULTIFD_SETUP). A channel for another migration, a duplicate id, one whose channel
 * count or id does not fit the setup (ids 0 .. channels-1, each once), or one nobody claims
 * within the timeout is refused (closed).
 *
 * A channel is held here as it connected (read in the incoming Worker), or, redirected to a
 * receive thread, as that thread's {@link RemoteChannel} (multifd_rx_pool.ts), without a
 * reader here. Either way its payload is read straight into guest RAM.
 *
 * @module
 */
import type { Channel } from "../ports.ts";
import type { FrameReader } from "../wire/frame_reader.ts";
import { type MultifdHello, uuidText } from "../wire/multifd.ts";
import { WireError } from "../wire/wire_error.ts";

/** An introduced page channel. */
export interface PageChannel {
  id: number;
  channel: Channel;
  /** Its reader here; null for a channel a receive thread reads. */
  reader: FrameReader | null;
}

const HOLD_MS = 10_000;
const MAX_HELD = 256;

/** Page channels waiting for their migration. */
export class MultifdRegistry {
  readonly #held = new Map<
    string,
    Map<number, PageChannel & { timer: number; channels: number }>
  >();
  #expect: { uuid: string; channels: number; wake: () => void } | null = null;
  #count = 0;
  /** The uuid of the migration whose channels are all in: any other channel is stray. */
  #active: string | null = null;

  /** Takes a new channel; returns false (and closes it) when it is refused. */
  offer(hello: MultifdHello, channel: Channel, reader: FrameReader | null): boolean {
    const uuid = uuidText(hello.uuid);
    const refuse = () => {
      channel.close();
      return false;
    };
    if (this.#active !== null) return refuse(); // all channels of the running one are in
    if (this.#expect && this.#expect.uuid !== uuid) return refuse();
    if (this.#expect && hello.channels !== this.#expect.channels) return refuse();
    if (this.#count >= MAX_HELD) return refuse();
    const set = this.#held.get(uuid) ?? new Map();
    if (set.has(hello.id)) return refuse();
    const timer = setTimeout(() => {
      if (set.get(hello.id)?.channel === channel) {
        set.delete(hello.id);
        this.#count--;
        channel.close();
      }
    }, HOLD_MS);
    set.set(hello.id, { id: hello.id, channel, reader, timer, channels: hello.channels });
    this.#held.set(uuid, set);
    this.#count++;
    this.#expect?.wake();
    return true;
  }

  /** Waits until all `channels` channels of `uuid` are in (migration_has_all_channels). */
  async claim(
    uuidBytes: Uint8Array,
    channels: number,
    timeoutMs = HOLD_MS,
  ): Promise<PageChannel[]> {
    const uuid = uuidText(uuidBytes);
    // Anything held for another migration is stray now.
    for (const [other, set] of this.#held) {
      if (other === uuid) continue;
      for (const c of set.values()) {
        clearTimeout(c.timer);
        c.channel.close();
        this.#count--;
      }
      this.#held.delete(other);
    }
    const end = Date.now() + timeoutMs;
    try {
      for (;;) {
        const set = this.#held.get(uuid);
        // Channels that announced another count than the setup's are not this migration's.
        for (const [id, c] of set ?? []) {
          if (c.channels === channels && id < channels) continue;
          clearTimeout(c.timer);
          c.channel.close();
          set!.delete(id);
          this.#count--;
        }
        if (set && set.size >= channels) {
          const got = [...set.values()].sort((a, b) => a.id - b.id);
          for (const c of got) clearTimeout(c.timer);
          this.#held.delete(uuid);
          this.#count -= got.length;
          this.#active = uuid;
          return got.map(({ id, channel, reader }) => ({ id, channel, reader }));
        }
        const left = end - Date.now();
        if (left <= 0) {
          throw new WireError(`multifd: only ${set?.size ?? 0} of ${channels} channels connected`);
        }
        await new Promise<void>((resolve) => {
          const t = setTimeout(resolve, left);
          this.#expect = {
            uuid,
            channels,
            wake: () => {
              clearTimeout(t);
              resolve();
            },
          };
        });
      }
    } finally {
      this.#expect = null;
    }
  }

  /** The migration that claimed channels has ended: new ones may come. */
  release(): void {
    this.#active = null;
  }

  /** Closes everything held (listener shut down). */
  close(): void {
    for (const set of this.#held.values()) {
      for (const c of set.values()) {
        clearTimeout(c.timer);
        c.channel.close();
      }
    }
    this.#held.clear();
    this.#count = 0;
  }
}
