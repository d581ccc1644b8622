/**
 * The prom-client collectors of `GET /metrics`: every gauge reads one snapshot of
 * query-migrate and the machine at scrape time; the two counters read the route's
 * {@link LabelCounts}. prom-client is imported here, on the first scrape only.
 *
 * @module
 */
import type { Registry } from "prom-client";
import type { MigrationInfo } from "../domain/migration_info.ts";
import { MIGRATION_STATUSES } from "../domain/state_machine.ts";
import type { RamBackingInfo } from "../adapters/memory/machine.ts";
import type { ExclusiveGate } from "./limits.ts";
import type { LabelCounts } from "./label_counts.ts";

/** What one scrape reads. */
export interface Snapshot {
  info: MigrationInfo;
  runstate: string;
  throttle: number;
  /** GET /machine's x-ram-backing. */
  ram: RamBackingInfo;
  subscribers: number;
}

/** One label-less gauge set from the snapshot at scrape time. */
type Reading = (s: Snapshot) => number;

/** What the collectors read: the snapshot, the RAM-pass gate, the two counts. */
export interface MetricsSources {
  /** The snapshot of this scrape. */
  take(): Snapshot;
  /** The gate RAM passes go through, once the app made it. */
  ramPass(): ExclusiveGate | undefined;
  /** HTTP requests by matched route, method and code. */
  requests: LabelCounts<"route" | "method" | "code">;
  /** Finished migrations by side and status. */
  finished: LabelCounts<"side" | "status">;
}

/** A new registry (prom-client's global one is never used) with every collector reading `src`. */
export async function buildRegistry(src: MetricsSources): Promise<Registry> {
  const { Counter, Gauge, Registry } = await import("prom-client");
  const registry = new Registry();
  const registers = [registry];
  const take = () => src.take();
  const ram = (f: (r: NonNullable<MigrationInfo["ram"]>) => number | undefined): Reading => (s) =>
    s.info.ram ? f(s.info.ram) ?? 0 : 0;
  const gauges: [string, string, Reading][] = [
    [
      "ferry_migration_transferred_bytes",
      "Bytes sent or received (ram.transferred)",
      ram((r) => r.transferred),
    ],
    [
      "ferry_migration_remaining_bytes",
      "Bytes still to send (ram.remaining)",
      ram((r) => r.remaining),
    ],
    ["ferry_migration_total_bytes", "Guest RAM to migrate (ram.total)", ram((r) => r.total)],
    [
      "ferry_migration_passes",
      "Dirty-log syncs so far (ram.dirty-sync-count)",
      ram((r) => r["dirty-sync-count"]),
    ],
    ["ferry_migration_throughput_mbps", "Throughput in Mbit/s (ram.mbps)", ram((r) => r.mbps)],
    [
      "ferry_migration_downtime_ms",
      "Downtime of the completed migration in ms",
      (s) => s.info.downtime ?? 0,
    ],
    [
      "ferry_migration_expected_downtime_ms",
      "Expected downtime in ms",
      (s) => s.info["expected-downtime"] ?? 0,
    ],
    [
      "ferry_migration_dirty_pages_rate",
      "Pages dirtied per second (ram.dirty-pages-rate)",
      ram((r) => r["dirty-pages-rate"]),
    ],
    [
      "ferry_migration_cpu_throttle_percent",
      "vCPU throttle applied (auto-converge), percent",
      (s) => s.throttle,
    ],
    ["ferry_sse_subscribers", "Clients following GET /events", (s) => s.subscribers],
    [
      "ferry_colo_checkpoints",
      "COLO checkpoints taken or applied (x-colo.checkpoints)",
      (s) => s.info["x-colo"]?.checkpoints ?? 0,
    ],
    [
      "ferry_colo_pause_p50_ms",
      "The COLO primary's median pause per checkpoint in ms",
      (s) => s.info["x-colo"]?.["pause-p50-ms"] ?? 0,
    ],
    [
      "ferry_colo_pause_p99_ms",
      "The COLO primary's 99th-percentile pause per checkpoint in ms",
      (s) => s.info["x-colo"]?.["pause-p99-ms"] ?? 0,
    ],
    [
      "ferry_colo_checkpoints_triggered",
      "COLO checkpoints started at once (x-colo.checkpoints-triggered)",
      (s) => s.info["x-colo"]?.["checkpoints-triggered"] ?? 0,
    ],
    [
      "ferry_colo_records_compared",
      "COLO primary: output record pairs compared (x-colo.records-compared)",
      (s) => s.info["x-colo"]?.["records-compared"] ?? 0,
    ],
    [
      "ferry_colo_records_mismatched",
      "COLO primary: output record pairs that differed (x-colo.records-mismatched)",
      (s) => s.info["x-colo"]?.["records-mismatched"] ?? 0,
    ],
    [
      "ferry_colo_records_held",
      "COLO primary: output records held now (x-colo.records-held)",
      (s) => s.info["x-colo"]?.["records-held"] ?? 0,
    ],
  ];
  for (const [name, help, read] of gauges) {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read(take()));
      },
    });
  }
  new Gauge({
    name: "ferry_migration_status",
    help: "1 for the current migration status (query-migrate), 0 for the others",
    labelNames: ["status"],
    registers,
    collect() {
      const { status } = take().info;
      for (const s of MIGRATION_STATUSES) this.set({ status: s }, s === status ? 1 : 0);
    },
  });
  new Gauge({
    name: "ferry_machine_runstate",
    help: "1 for the guest's current runstate",
    labelNames: ["runstate"],
    registers,
    collect() {
      this.reset();
      this.set({ runstate: take().runstate }, 1);
    },
  });
  new Gauge({
    name: "ferry_ram_huge_page_bytes",
    help: "Bytes of guest RAM backed by transparent huge pages (AnonHugePages in /proc/self/smaps)",
    registers,
    collect() {
      this.set(take().ram["huge-page-bytes"] ?? 0);
    },
  });
  new Gauge({
    name: "ferry_ram_page_size_bytes",
    help: "Page size asked of the kernel for guest RAM (2097152: huge pages; 4096)",
    registers,
    collect() {
      this.set(take().ram["page-size"]);
    },
  });
  new Gauge({
    name: "ferry_migration_pages",
    help:
      "Pages of the current migration by kind (ram.normal, ram.duplicate); a gauge: a new migration starts it again",
    labelNames: ["kind"],
    registers,
    collect() {
      const r = take().info.ram;
      this.set({ kind: "normal" }, r?.normal ?? 0);
      this.set({ kind: "duplicate" }, r?.duplicate ?? 0);
    },
  });
  new Gauge({
    name: "ferry_migration_disk_bytes",
    help: "Block migration's drives in bytes by kind (disk.transferred, disk.remaining, " +
      "disk.total); 0 without block migration",
    labelNames: ["kind"],
    registers,
    collect() {
      const d = take().info.disk;
      this.set({ kind: "transferred" }, d?.transferred ?? 0);
      this.set({ kind: "remaining" }, d?.remaining ?? 0);
      this.set({ kind: "total" }, d?.total ?? 0);
    },
  });
  new Gauge({
    name: "ferry_migration_channel_bytes",
    help: "Bytes of the current migration by channel (main = transferred - multifd-bytes)",
    labelNames: ["channel"],
    registers,
    collect() {
      const r = take().info.ram;
      const multifd = r?.["multifd-bytes"] ?? 0;
      this.set({ channel: "main" }, Math.max(0, (r?.transferred ?? 0) - multifd));
      this.set({ channel: "multifd" }, multifd);
    },
  });
  const gate = (read: (g: ExclusiveGate) => number) => () => {
    const g = src.ramPass();
    return g === undefined ? 0 : read(g);
  };
  const gateGauges: [string, string, () => number][] = [
    [
      "ferry_ram_pass_running",
      "Requests making a full pass over RAM now (GET /machine/digest; at most 1)",
      gate((g) => g.running),
    ],
    [
      "ferry_ram_pass_running_max",
      "The most RAM-pass requests that ever ran at once",
      gate((g) => g.maxRunning),
    ],
    ["ferry_ram_pass_waiting", "RAM-pass requests waiting their turn", gate((g) => g.waiting)],
  ];
  for (const [name, help, read] of gateGauges) {
    new Gauge({
      name,
      help,
      registers,
      collect() {
        this.set(read());
      },
    });
  }
  const counted = <L extends string>(
    name: string,
    help: string,
    labelNames: L[],
    counts: LabelCounts<L>,
  ) =>
    new Counter({
      name,
      help,
      labelNames,
      registers,
      collect() {
        this.reset();
        for (const { labels, n } of counts.entries()) this.inc(labels, n);
      },
    });
  counted(
    "ferry_http_requests_total",
    "HTTP requests by matched route, method and status code",
    ["route", "method", "code"],
    src.requests,
  );
  counted(
    "ferry_migrations_finished_total",
    "Migrations that reached a final status (MIGRATION events), by side and status",
    ["side", "status"],
    src.finished,
  );
  return registry;
}
