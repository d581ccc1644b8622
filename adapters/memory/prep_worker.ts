/**
 * Short-lived RAM preparation Worker: runs the PrepJobs it is sent (fill or pre-touch a share
 * of guest RAM, so several cores pay the first-touch page faults at once), answers, closes.
 *
 * @module
 */

import { type PrepJob, runPrepJob } from "./guest_ram.ts";

interface WorkerScope {
  onmessage: ((e: MessageEvent<PrepJob[]>) => void) | null;
  postMessage(message: unknown): void;
  close(): void;
}

const scope = globalThis as unknown as WorkerScope;
scope.onmessage = (e) => {
  for (const job of e.data) runPrepJob(job);
  scope.postMessage("done");
  scope.close();
};
