/**
 * A dashboard test fixture: an `x-progress` as the agent's one formula makes it
 * (domain/progress.ts), for the dashboard's model and view tests.
 *
 * @module
 */
import { assessProgress } from "../../domain/progress.ts";
import type { MigrationStatus } from "../../domain/state_machine.ts";

/** An `x-progress` as the agent's one formula makes it (domain/progress.ts). */
export function agentProgress(
  status: MigrationStatus,
  total: number,
  remaining: number,
  verdict?: string,
) {
  return assessProgress({
    status,
    total,
    remaining,
    remainingCost: remaining,
    bandwidth: 1e8,
    downtimeLimit: 300,
    convergence: verdict
      ? { verdict: verdict as "stalled", ...(verdict === "converging" ? { "eta-ms": 900 } : {}) }
      : undefined,
  });
}
