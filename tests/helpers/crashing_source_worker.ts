/**
 * Test helper: the source Worker (domain/engine/source_worker.ts) that dies on purpose, as a
 * bug or an out-of-memory would kill it: an uncaught error once the moment named in its URL's
 * query comes —
 *
 * - `?at=active&bytes=N`: the migration is `active` and has sent at least N bytes;
 * - `?at=crossed&after=MS`: MS milliseconds after the migration crossed its point of no return.
 *
 * Pass its URL to `Outgoing` (`OutgoingOptions.sourceWorker`).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import "../../domain/engine/source_worker.ts";
import { MIGRATION_STATUSES } from "../../domain/state_machine.ts";
import { STAT } from "../../domain/engine/stats.ts";
import type { SourceStart } from "../../domain/engine/messages.ts";
import { PointOfNoReturn } from "../../domain/engine/no_return.ts";

const query = new URL(import.meta.url).searchParams;
const at = query.get("at");
const real = self.onmessage as (e: MessageEvent) => void;

function crashWhen(ready: () => boolean, afterMs: number): void {
  const poll = setInterval(() => {
    if (!ready()) return;
    clearInterval(poll);
    setTimeout(() => {
      throw new Error("injected crash");
    }, afterMs);
  }, 1);
}

self.onmessage = (e: MessageEvent) => {
  real(e);
  const m = e.data as SourceStart;
  if (m.t !== "start" || m.recover) return;
  if (at === "active") {
    const bytes = Number(query.get("bytes") ?? 0);
    crashWhen(
      () =>
        MIGRATION_STATUSES[Atomics.load(m.status, 0)] === "active" &&
        m.stats[STAT.transferred] >= bytes,
      0,
    );
  } else if (at === "crossed") {
    const point = new PointOfNoReturn(m.point);
    crashWhen(() => point.crossed, Number(query.get("after") ?? 0));
  }
};
