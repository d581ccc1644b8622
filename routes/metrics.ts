/**
 * `GET /metrics`: Prometheus text exposition from a per-app prom-client Registry. The
 * migration gauges are read at scrape time from query-migrate and the machine; the HTTP
 * request counter is labelled by the matched route (never the raw URL, so its
 * cardinality stays bounded); finished migrations are counted from MIGRATION events.
 *
 * prom-client (CommonJS: it brings Deno's whole `require` machinery) is imported at the
 * first scrape, not at start: it was about a tenth of an agent's start-up CPU (measured
 * 2026-12-06), and most agents are never scraped. Until then the two counters are plain maps.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { matchedRoutes } from "hono/route";
import type { Registry } from "prom-client";
import type { EventBus, FerryEvent } from "../domain/event_bus.ts";
import type { Logger } from "../domain/log.ts";
import type { MigrationInfo } from "../domain/migration_info.ts";
import type { ExclusiveGate } from "./limits.ts";
import { MIGRATION_STATUSES } from "../domain/state_machine.ts";
import type { RamBackingInfo } from "../adapters/memory/machine.ts";
import { problems } from "./problem.ts";
import type { AgentRef } from "./route_kit.ts";

const FINAL = new Set(["completed", "failed", "cancelled"]);
/** Methods counted by name; any other is counted as OTHER (the label set stays bounded). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** What one scrape reads. */
interface Snapshot {
  info: MigrationInfo;
  runstate: string;
  throttle: number;
  /** GET /machine's x-ram-backing. */
  ram: RamBackingInfo;
  subscribers: number;
}

/** One label-less gauge set from the snapshot at scrape time. */
type Reading = (s: Snapshot) => number;

/** The label for a route path: OpenAPI style (`/migrations/{id}`), `unmatched` for none. */
function routeLabel(path: string | undefined): string {
  return path === undefined ? "unmatched" : path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}");
}

/** Counts by label set, kept until (and read at) a scrape. */
class LabelCounts<L extends string> {
  readonly #counts = new Map<string, { labels: Record<L, string>; n: number }>();

  inc(labels: Record<L, string>): void {
    const key = JSON.stringify(labels);
    const c = this.#counts.get(key);
    if (c) c.n++;
    else this.#counts.set(key, { labels, n: 1 });
  }

  entries(): Iterable<{ labels: Record<L, string>; n: number }> {
    return this.#counts.values();
  }
}

/** An agent's metrics: the registry (built at the first scrape), its collectors, the counts. */
export class FerryMetrics {
  readonly #agent: AgentRef;
  readonly #requests = new LabelCounts<"route" | "method" | "code">();
  readonly #finished = new LabelCounts<"side" | "status">();
  #registry: Promise<Registry> | undefined;
  #snapshot: Snapshot | undefined;
  #internalSubscribers = 0;
  /** The gate RAM passes (`GET /machine/digest`) go through, once the app made it. */
  ramPass: ExclusiveGate | undefined;

  /** Metrics read from `agent()` at scrape time. */
  constructor(agent: AgentRef) {
    this.#agent = agent;
  }

  /** The per-app registry (prom-client's global one is never used), made on first use. */
  registry(): Promise<Registry> {
    return this.#registry ??= this.#build();
  }

  async #build(): Promise<Registry> {
    const { Counter, Gauge, Registry } = await import("prom-client");
    const registry = new Registry();
    const registers = [registry];
    const take = () => this.#snapshot ?? this.#take();
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
      help:
        "Bytes of guest RAM backed by transparent huge pages (AnonHugePages in /proc/self/smaps)",
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
      return this.ramPass === undefined ? 0 : read(this.ramPass);
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
      this.#requests,
    );
    counted(
      "ferry_migrations_finished_total",
      "Migrations that reached a final status (MIGRATION events), by side and status",
      ["side", "status"],
      this.#finished,
    );
    return registry;
  }

  #take(): Snapshot {
    const agent = this.#agent();
    const machine = agent.machine.info();
    return {
      info: agent.query(),
      runstate: machine.runstate,
      throttle: machine["cpu-throttle-percentage"],
      ram: machine["x-ram-backing"],
      subscribers: Math.max(0, agent.events.subscriberCount - this.#internalSubscribers),
    };
  }

  /** The exposition text and its content type; every gauge reads one snapshot taken now. */
  async scrape(): Promise<{ text: string; contentType: string }> {
    const registry = await this.registry();
    this.#snapshot = this.#take();
    try {
      return { text: await registry.metrics(), contentType: registry.contentType };
    } finally {
      this.#snapshot = undefined;
    }
  }

  /** Counts a MIGRATION event that reports a final status. */
  record(event: FerryEvent): void {
    if (event.event !== "MIGRATION") return;
    const { status, side } = event.data as { status: string; side: string };
    if (FINAL.has(status)) this.#finished.inc({ side, status });
  }

  /**
   * Follows `bus` with one subscription of the agent's own (not counted among
   * `ferry_sse_subscribers`), from the start of its backlog so that nothing published
   * before is missed: records every event, then hands it to `also`. Returns stop.
   */
  follow(bus: EventBus, also?: (event: FerryEvent) => void): () => void {
    const sub = bus.subscribe(0);
    this.#internalSubscribers++;
    let open = true;
    (async () => {
      for (let e = await sub.next(); e; e = await sub.next()) {
        this.record(e);
        try {
          also?.(e);
        } catch { /* a failing listener never stops the counting */ }
      }
      if (open) this.#internalSubscribers--;
      open = false;
    })();
    return () => {
      if (open) this.#internalSubscribers--;
      open = false;
      sub.close();
    };
  }

  /**
   * Middleware counting every request by matched route, method and code; with `logger`,
   * a 5xx answer is logged at error.
   */
  observe(logger?: Logger): MiddlewareHandler {
    return async (c, next) => {
      const started = performance.now();
      await next();
      const routes = matchedRoutes(c);
      const responder = routes[c.req.routeIndex];
      const path = responder && responder.method !== "ALL"
        ? responder.path
        : routes.find((r) => r.method !== "ALL")?.path;
      const route = routeLabel(path);
      const code = c.res.status;
      const method = METHODS.has(c.req.method) ? c.req.method : "OTHER";
      this.#requests.inc({ route, method, code: String(code) });
      if (code >= 500 && logger) {
        logger.error("http error", {
          method,
          route,
          path: c.req.path,
          status: code,
          ms: Math.round(performance.now() - started),
        });
      }
    };
  }
}

const metrics = createRoute({
  method: "get",
  path: "/metrics",
  operationId: "metrics",
  tags: ["service"],
  summary: "Prometheus metrics (text exposition format 0.0.4)",
  description: [
    "Gauges of the current migration (status, bytes, pages, passes, throughput, downtime,",
    "dirty rate, throttle, bytes per channel), the number of SSE subscribers, RAM-pass",
    "requests running and waiting (`ferry_ram_pass_*`), finished migrations by status, and",
    "HTTP requests by route, method and code.",
  ].join(" "),
  responses: {
    200: {
      description: "The metrics",
      content: { "text/plain": { schema: z.string() } },
    },
    ...problems(),
  },
});

/** The `/metrics` sub-app serving `m`. */
export function metricsRoutes(m: FerryMetrics): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(metrics, async (c) => {
    const { text, contentType } = await m.scrape();
    return c.text(text, 200, { "content-type": contentType });
  });
  return app;
}
