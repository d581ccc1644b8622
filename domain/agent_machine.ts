/**
 * The agent's guest, built from its configuration: the RAM backing is resolved (huge pages
 * or not), the machine is made, and the pages it got are logged with the time it took.
 *
 * @module
 */
import { Machine } from "../adapters/memory/machine.ts";
import { hugePagesModeFrom, resolveRamBacking } from "../adapters/memory/ram_backing.ts";
import type { AgentConfig } from "./agent_config.ts";

/** Builds the guest `config` describes and logs its RAM backing ("guest RAM pages"). */
export async function buildMachine(config: AgentConfig): Promise<Machine> {
  const backing = await resolveRamBacking(hugePagesModeFrom(config.hugePages));
  const t0 = performance.now();
  const machine = await Machine.create({
    blocks: config.blocks,
    fill: config.fill,
    workload: config.workload,
    startPaused: config.startPaused,
    incoming: config.incoming !== null,
    backing,
    ...(config.guest ? { guest: config.guest } : {}),
    arrivalDigest: (config.arrivalDigest ?? false) && config.incoming !== null,
    drives: config.drives ?? [],
  });
  const ram = machine.ramBackingInfo();
  config.logger?.log(backing.fallback ? "warn" : "info", "guest RAM pages", {
    "page-size": ram["page-size"],
    "huge-pages": ram["huge-pages"],
    reason: ram.reason,
    thp: ram.thp,
    "huge-page-bytes": ram["huge-page-bytes"],
    // Allocating, advising and filling (or pre-touching) RAM, and starting the vCPU.
    "ram-ready-ms": Math.round(performance.now() - t0),
  });
  return machine;
}
