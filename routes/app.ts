/**
 * The HTTP application: mounts one sub-app per resource, maps errors to problem+json,
 * limits bodies to 64 KiB, and serves the OpenAPI document.
 *
 * @module
 */
import { OpenAPIHono } from "@hono/zod-openapi";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { Agent } from "../domain/agent.ts";
import { eventRoutes } from "./events.ts";
import { machineRoutes } from "./machine.ts";
import { migrationRoutes } from "./migrations.ts";
import { optionRoutes } from "./options.ts";
import { errorResponse, problem } from "./problem.ts";

/** OpenAPI document metadata. */
export const OPENAPI_INFO = {
  openapi: "3.1.0",
  info: {
    title: "Ferry",
    version: "0.1.0",
    description: "QEMU's live-migration subsystem as a REST + Server-Sent Events service. " +
      "Names are QMP's; errors are application/problem+json with QMP's texts.",
  },
};

const MAX_BODY = 64 * 1024;

/** Builds the app for one agent. */
export function createApp(agent: Agent): OpenAPIHono {
  const app = new OpenAPIHono();
  app.use(bodyLimit({
    maxSize: MAX_BODY,
    onError: (c) => problem(c, 413, `Request body larger than ${MAX_BODY} bytes`),
  }));
  app.get("/healthz", (c) => c.json({ status: "ok" }));
  app.route("/", migrationRoutes(agent));
  app.route("/", optionRoutes(agent));
  app.route("/", machineRoutes(agent));
  app.route("/", eventRoutes(agent.events));
  app.doc31("/openapi.json", OPENAPI_INFO);
  app.onError((e, c) => {
    if (e instanceof HTTPException) {
      const status = e.status === 400 || e.status === 413 ? e.status : 400;
      return problem(c, status, e.message || "Malformed request");
    }
    return errorResponse(c, e);
  });
  app.notFound((c) => problem(c, 404, `No route for ${c.req.method} ${c.req.path}`, "CommandNotFound"));
  return app;
}
