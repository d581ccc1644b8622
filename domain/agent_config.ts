/**
 * How an agent starts: its guest, options and channels, from the command line.
 *
 * @module
 */
import type { DriveSpec } from "../adapters/disk/drive.ts";
import type { GuestSpec } from "../adapters/memory/machine.ts";
import type { RamBlockSpec } from "../adapters/memory/layout.ts";
import type { WorkloadSpec } from "../adapters/memory/workload.ts";
import type { TlsCredsRegistry } from "../adapters/channels/tls_creds.ts";
import type { Globals } from "./globals.ts";
import type { Logger } from "./log.ts";
import type { Capabilities, Parameters } from "./options.ts";
import type { ArbiterSpec } from "./colo_arbiter.ts";

/** How an agent starts (from the command line). */
export interface AgentConfig {
  blocks: RamBlockSpec[];
  fill: "zero" | "random" | "pattern";
  workload: WorkloadSpec;
  startPaused: boolean;
  /** `--incoming`: a URI, `defer`, or null for a source agent. */
  incoming: string | null;
  parameters?: Parameters;
  capabilities?: Capabilities;
  onlyMigratable?: boolean;
  /** The seed's non-option globals (`--global migration.store-global-state=...`). */
  globals?: Globals["flags"];
  /** TLS credentials declared with `--object tls-creds-x509,...`. */
  tls?: TlsCredsRegistry;
  /** `--allow-exec`: take `exec:` migration URIs (they run shell commands). Default off. */
  allowExec?: boolean;
  /** `--huge-pages on|off|auto` (else FERRY_HUGE_PAGES, else auto); checked in create. */
  hugePages?: string;
  /** Where the agent says how its guest RAM is backed (once, at start). */
  logger?: Logger;
  /** `--guest wasm:`: a WebAssembly program as the guest instead of the workload. */
  guest?: GuestSpec;
  /**
   * How long a silent or stuck peer is given before its link is given up (ms; default 30 s,
   * engine/link_watch.ts). FERRY_LINK_TIMEOUT_MS sets it (tests make it short).
   */
  linkTimeoutMs?: number;
  /**
   * `--arrival-digest` (or FERRY_ARRIVAL_DIGEST=1): a destination keeps the digest of RAM as it
   * arrived, for `GET /machine/digest` (a copy-on-first-write snapshot: up to a second copy of
   * RAM). Off by default: the destination holds one copy and the digest hashes RAM now.
   */
  arrivalDigest?: boolean;
  /** `--drive`: the machine's raw disk images. */
  drives?: DriveSpec[];
  /** `--colo-arbiter etcd:URL`: who decides which COLO side runs on (colo_arbiter.ts). */
  coloArbiter?: ArbiterSpec;
}
