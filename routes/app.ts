/**
 * The HTTP application: Host and Origin checked on every request (routes/host_guard.ts),
 * optional bearer auth, JSON-only bodies of at most 64 KiB, one
 * sub-app per resource, errors as problem+json, and the OpenAPI document served. The
 * document is built from the same route definitions without an agent, so
 * `scripts/gen_openapi.ts` needs no guest.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Agent } from "../domain/agent.ts";
import type { Logger } from "../domain/log.ts";
import { type HostNames } from "./api_access.ts";
import { bearerAuth } from "./auth.ts";
import { dashboardRoutes } from "./dashboard.ts";
import { blockerRoutes } from "./blockers.ts";
import { docRoutes } from "./docs.ts";
import { eventRoutes } from "./events.ts";
import { machineRoutes } from "./machine.ts";
import { driveBitmapRoutes } from "./drive_bitmaps.ts";
import { driveRoutes } from "./drives.ts";
import { machineIoRoutes } from "./machine_io.ts";
import { hostGuard } from "./host_guard.ts";
import { ExclusiveGate, MAX_SSE_SUBSCRIBERS, RAM_PASS_QUEUE, StreamSlots } from "./limits.ts";
import { FerryMetrics, metricsRoutes } from "./metrics.ts";
import { migrationRoutes } from "./migrations.ts";
import { switchoverRoutes } from "./switchover.ts";
import { ColoExitEventSchema, coloRoutes } from "./colo.ts";
import { optionRoutes } from "./options.ts";
import { errorResponse, problem } from "./problem.ts";
import type { AgentRef } from "./route_kit.ts";
import {
  MigrationConvergenceEventSchema,
  MigrationEventSchema,
  MigrationPassEventSchema,
  MigrationPolicyEventSchema,
  ProgressEventSchema,
} from "./schemas.ts";

/** OpenAPI document metadata. */
export const OPENAPI_INFO = {
  openapi: "3.1.0",
  info: {
    title: "Ferry",
    version: "0.1.0",
    description: "QEMU's live-migration subsystem as a REST + Server-Sent Events service. " +
      "Names are QMP's; errors are application/problem+json with QMP's texts. " +
      "With `--api-token` every API request needs `Authorization: Bearer TOKEN` (not /healthz, " +
      "nor the dashboard page and its assets, which ask for the token themselves, nor this " +
      "reference: /docs, /openapi.json and /openapi.yaml). " +
      "Every request but /healthz must name the agent in `Host` (its listen address, loopback " +
      "names for a loopback listener, `--api-host` names) and carry no foreign `Origin`; " +
      "otherwise the answer is 403.",
  },
  servers: [{ url: "http://127.0.0.1:8080", description: "The default --listen address" }],
  security: [{ bearerAuth: [] as string[] }, {} as Record<string, string[]>],
};

/** The largest request body accepted. */
export const MAX_BODY = 64 * 1024;

/** How an app is built. */
export interface AppOptions {
  /** `--api-token`: when set, every request but /healthz must carry it as a bearer token. */
  apiToken?: string;
  /** The SSE heartbeat period (default 15 s). */
  heartbeatMs?: number;
  /** The metrics served at /metrics (default: a fresh set for this app's agent). */
  metrics?: FerryMetrics;
  /** Where HTTP 5xx answers are logged (default: not logged). */
  logger?: Logger;
  /** The Host names requests may carry (default: loopback names, for a loopback listener). */
  hosts?: HostNames;
  /** `--max-sse-subscribers`: event streams open at once (default 256). */
  maxSseSubscribers?: number;
}

/** What one app bounds: RAM passes one at a time, a number of event streams. */
interface Limits {
  ramPass: ExclusiveGate;
  streams: StreamSlots;
}

function limitsFor(options: AppOptions): Limits {
  return {
    ramPass: new ExclusiveGate(RAM_PASS_QUEUE),
    streams: new StreamSlots(options.maxSseSubscribers ?? MAX_SSE_SUBSCRIBERS),
  };
}

const LOOPBACK: HostNames = { any: false, loopback: true, names: new Set() };

const health = createRoute({
  method: "get",
  path: "/healthz",
  operationId: "healthz",
  tags: ["service"],
  summary: "Liveness (no token needed)",
  security: [],
  responses: {
    200: {
      description: "Alive",
      content: { "application/json": { schema: z.object({ status: z.literal("ok") }) } },
    },
  },
});

/** Every documented route, acting on `agent` when a request comes. */
function apiRoutes(agent: AgentRef, options: AppOptions, limits: Limits): OpenAPIHono {
  const api = new OpenAPIHono();
  api.openAPIRegistry.registerComponent("securitySchemes", "bearerAuth", {
    type: "http",
    scheme: "bearer",
    description: "The agent's --api-token (or FERRY_API_TOKEN), when it has one.",
  });
  api.openAPIRegistry.register("MigrationEvent", MigrationEventSchema);
  api.openAPIRegistry.register("MigrationPassEvent", MigrationPassEventSchema);
  api.openAPIRegistry.register("MigrationConvergenceEvent", MigrationConvergenceEventSchema);
  api.openAPIRegistry.register("MigrationPolicyEvent", MigrationPolicyEventSchema);
  api.openAPIRegistry.register("ProgressEvent", ProgressEventSchema);
  api.openAPIRegistry.register("ColoExitEvent", ColoExitEventSchema);
  api.openapi(health, (c) => c.json({ status: "ok" as const }, 200));
  api.route("/", migrationRoutes(agent));
  api.route("/", switchoverRoutes(agent));
  api.route("/", coloRoutes(agent));
  api.route("/", optionRoutes(agent));
  api.route("/", blockerRoutes(agent));
  api.route("/", machineRoutes(agent, limits.ramPass));
  api.route("/", driveRoutes(agent));
  api.route("/", driveBitmapRoutes(agent));
  api.route("/", machineIoRoutes(agent, options.heartbeatMs, limits.streams));
  api.route("/", eventRoutes(agent, options.heartbeatMs, limits.streams));
  api.route("/", metricsRoutes(options.metrics ?? new FerryMetrics(agent)));
  return api;
}

/** The OpenAPI 3.1 document, built from the route definitions without any agent. */
export function openApiDocument(): ReturnType<OpenAPIHono["getOpenAPI31Document"]> {
  const noAgent = () => {
    throw new Error("the document-only app has no agent");
  };
  return apiRoutes(noAgent, {}, limitsFor({})).getOpenAPI31Document(OPENAPI_INFO);
}

/** 415 for a request body that is not JSON (`application/json` or any `+json`). */
function jsonBodiesOnly(): MiddlewareHandler {
  return async (c, next) => {
    // The guest's stdin takes raw bytes (POST /machine/input).
    if (c.req.path === "/machine/input") return await next();
    const type = c.req.header("content-type");
    const length = c.req.header("content-length");
    const hasBody = type !== undefined || (length !== undefined && length !== "0") ||
      c.req.header("transfer-encoding") !== undefined;
    if (hasBody && !/^application\/([\w.-]+\+)?json\s*(;.*)?$/i.test(type ?? "")) {
      return problem(c, 415, `Request bodies must be application/json, not '${type ?? "none"}'`);
    }
    return await next();
  };
}

/** Builds the app for one agent. */
export function createApp(agent: Agent, options: AppOptions = {}): OpenAPIHono {
  const app = new OpenAPIHono();
  const metrics = options.metrics ?? new FerryMetrics(() => agent);
  const limits = limitsFor(options);
  metrics.ramPass = limits.ramPass;
  app.use(metrics.observe(options.logger));
  app.use(hostGuard(options.hosts ?? LOOPBACK)); // ahead of everything but /healthz
  app.route("/", dashboardRoutes()); // ahead of auth: the page asks for the token itself
  const api = apiRoutes(() => agent, { ...options, metrics }, limits);
  // Ahead of auth too: the API reference describes the API and holds no secret (the same
  // text as openapi.yaml); its "Try it out" calls are API requests and need the token.
  let document: unknown;
  app.route("/", docRoutes(() => (document ??= api.getOpenAPI31Document(OPENAPI_INFO))));
  if (options.apiToken) app.use(bearerAuth(options.apiToken));
  app.use(jsonBodiesOnly());
  app.use(bodyLimit({
    maxSize: MAX_BODY,
    onError: (c) => problem(c, 413, `Request body larger than ${MAX_BODY} bytes`),
  }));
  app.route("/", api);
  app.onError((e, c) => {
    if (e instanceof HTTPException) {
      const status = e.status === 413 ? 413 : 400;
      return problem(c, status, e.message || "Malformed request");
    }
    return errorResponse(c, e);
  });
  app.notFound((c) =>
    problem(c, 404, `No route for ${c.req.method} ${c.req.path}`, "CommandNotFound")
  );
  return app;
}
