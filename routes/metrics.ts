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
import type { ExclusiveGate } from "./limits.ts";
import { LabelCounts } from "./label_counts.ts";
import { buildRegistry, type Snapshot } from "./metrics_registry.ts";
import { problems } from "./problem.ts";
import type { AgentRef } from "./route_kit.ts";

const FINAL = new Set(["completed", "failed", "cancelled"]);
/** Methods counted by name; any other is counted as OTHER (the label set stays bounded). */
const METHODS = new Set(["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]);

/** The label for a route path: OpenAPI style (`/migrations/{id}`), `unmatched` for none. */
function routeLabel(path: string | undefined): string {
  return path === undefined ? "unmatched" : path.replace(/:(\w+)(\{[^}]*\})?/g, "{$1}");
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

  #build(): Promise<Registry> {
    return buildRegistry({
      take: () => this.#snapshot ?? this.#take(),
      ramPass: () => this.ramPass,
      requests: this.#requests,
      finished: this.#finished,
    });
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
