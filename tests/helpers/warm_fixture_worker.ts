/**
 * Test fixture: a data-path Worker that counts the runs it was started for. Each start answers
 * with a `pass` numbered by that count (a reused Worker says 2 on its second run); without
 * `hold` the run ends at once (`done`) and, a moment later, posts a leftover `error` for it, as
 * a finished run's late reply would. Each `pass` also says how many `warm-up` messages the
 * Worker had before (`warmUps`).
 *
 * @module
 */
/// <reference lib="deno.worker" />

let starts = 0;
let warmUps = 0;

self.onmessage = (e: MessageEvent<{ t: string; run?: number; hold?: boolean }>) => {
  const m = e.data;
  if (m.t === "warm-up") warmUps++;
  if (m.t !== "start") return;
  starts++;
  const run = m.run;
  self.postMessage({ t: "pass", pass: starts, run, warmUps });
  if (m.hold) return;
  self.postMessage({ t: "done", run });
  setTimeout(() => self.postMessage({ t: "error", message: `late, from run ${run}`, run }), 20);
};
