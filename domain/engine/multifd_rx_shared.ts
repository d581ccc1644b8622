/**
 * What the destination's page channels share with the incoming run, wherever they are read
 * (in the incoming Worker, or each in a receive Worker of its own): per channel the last pass
 * whose MULTIFD_SYNC it reached, whether it ended (EOF) or failed, and its counters; for all,
 * an epoch every change bumps (waiters sleep on it), an abort flag and POSTCOPY_ADVISE. Pure
 * layout helpers over SharedArrayBuffers; no I/O.
 *
 * @module
 */

/** Control cells (Int32Array indices) before the per-channel ones. */
export const RX = {
  /** Bumped (and notified) on every change below. */
  EPOCH: 0,
  /** 1: the run gave up; readers stop. */
  ABORT: 1,
  /** 1: POSTCOPY_ADVISE came (placed pages are received for the vCPU). */
  ADVISED: 2,
} as const;

/** Per-channel control cells, at {@link chCell}. */
export const RX_CH = { REACHED: 0, ENDED: 1, FAILED: 2 } as const;

/** Per-channel counters (Float64Array), at {@link chStat}. */
export const RX_STAT = { BYTES: 0, NORMAL: 1, DUPLICATE: 2 } as const;

const FIRST_CH = 4;
const CH_CELLS = 4;
const CH_STATS = 4;

/** The shared state of one incoming migration's page channels. */
export interface RxShared {
  ctl: SharedArrayBuffer;
  stats: SharedArrayBuffer;
  /** The run's `seen` map (RamLoader.seenMap). */
  seen: SharedArrayBuffer;
  channels: number;
}

/** Allocates the shared state for `channels` channels over the run's `seen` map. */
export function createRxShared(channels: number, seen: SharedArrayBuffer): RxShared {
  return {
    ctl: new SharedArrayBuffer((FIRST_CH + channels * CH_CELLS) * 4),
    stats: new SharedArrayBuffer(channels * CH_STATS * 8),
    seen,
    channels,
  };
}

/** Index of channel `id`'s control cell `cell` (an {@link RX_CH} value). */
export function chCell(id: number, cell: number): number {
  return FIRST_CH + id * CH_CELLS + cell;
}

/** Index of channel `id`'s counter `slot` (an {@link RX_STAT} value). */
export function chStat(id: number, slot: number): number {
  return id * CH_STATS + slot;
}

/** Wakes every waiter (they look at the cells again). */
export function wake(ctl: Int32Array): void {
  Atomics.add(ctl, RX.EPOCH, 1);
  Atomics.notify(ctl, RX.EPOCH);
}

/**
 * Waits until the epoch moves past `epoch`, or `ms` pass. A timer runs beside the wait: an
 * Atomics.waitAsync alone does not keep Deno's event loop alive.
 */
export async function waitEpoch(ctl: Int32Array, epoch: number, ms: number): Promise<void> {
  const r = Atomics.waitAsync(ctl, RX.EPOCH, epoch, ms);
  if (!r.async) return;
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([r.value, new Promise((done) => timer = setTimeout(done, ms))]);
  clearTimeout(timer);
}

/** Sets a cell and wakes every waiter. */
export function setCell(ctl: Int32Array, index: number, value: number): void {
  Atomics.store(ctl, index, value);
  wake(ctl);
}

/** Sums counter `slot` over every channel. */
export function sumRx(stats: Float64Array, channels: number, slot: number): number {
  let n = 0;
  for (let id = 0; id < channels; id++) n += stats[chStat(id, slot)];
  return n;
}

/** Channels that failed, and channels that ended. */
export function rxState(ctl: Int32Array, channels: number): { failed: number; ended: number } {
  let failed = 0, ended = 0;
  for (let id = 0; id < channels; id++) {
    failed += Atomics.load(ctl, chCell(id, RX_CH.FAILED));
    ended += Atomics.load(ctl, chCell(id, RX_CH.ENDED));
  }
  return { failed, ended };
}

/**
 * Where the channels stand against MULTIFD_SYNC(`pass`): every one reached it (one that did may
 * have ended since), one failed, one ended before it (it never will), or some are on the way;
 * with the first channel behind.
 */
export function passState(
  ctl: Int32Array,
  channels: number,
  pass: number,
): { state: "reached" | "failed" | "ended-early" | "waiting"; behind?: number } {
  let behind: number | undefined;
  for (let id = 0; id < channels; id++) {
    if (Atomics.load(ctl, chCell(id, RX_CH.FAILED)) !== 0) return { state: "failed" };
    if (Atomics.load(ctl, chCell(id, RX_CH.REACHED)) >= pass) continue;
    if (Atomics.load(ctl, chCell(id, RX_CH.ENDED)) !== 0) return { state: "ended-early" };
    behind ??= id;
  }
  return behind === undefined ? { state: "reached" } : { state: "waiting", behind };
}

/**
 * Waits until every channel reached MULTIFD_SYNC(`pass`); resolves false when the run aborts,
 * a channel fails, or one ended before the pass (whoever waits then reads why elsewhere).
 */
export async function waitPass(ctl: Int32Array, channels: number, pass: number): Promise<boolean> {
  for (;;) {
    const epoch = Atomics.load(ctl, RX.EPOCH);
    if (Atomics.load(ctl, RX.ABORT) !== 0) return false;
    const { state } = passState(ctl, channels, pass);
    if (state !== "waiting") return state === "reached";
    await waitEpoch(ctl, epoch, 1000);
  }
}
