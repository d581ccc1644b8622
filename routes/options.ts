/**
 * `/capabilities` and `/parameters`: query and merge-patch the migration options.
 *
 * @module
 */
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import type { Agent } from "../domain/agent.ts";
import {
  CapabilitiesPatchSchema,
  CapabilitiesSchema,
  ParametersPatchSchema,
  ParametersSchema,
} from "../domain/option_schemas.ts";
import type { Capabilities } from "../domain/options.ts";
import { problems, validationHook } from "./problem.ts";

const json = <T>(schema: T) => ({ content: { "application/json": { schema } } });

const getCaps = createRoute({
  method: "get",
  path: "/capabilities",
  tags: ["options"],
  summary: "query-migrate-capabilities",
  responses: { 200: { description: "Every capability", ...json(CapabilitiesSchema) } },
});

const patchCaps = createRoute({
  method: "patch",
  path: "/capabilities",
  tags: ["options"],
  summary: "migrate-set-capabilities (JSON merge patch)",
  request: { body: { required: true, ...json(CapabilitiesPatchSchema) } },
  responses: {
    200: { description: "Every capability after the change", ...json(CapabilitiesSchema) },
    ...problems(400, 409),
  },
});

const getParams = createRoute({
  method: "get",
  path: "/parameters",
  tags: ["options"],
  summary: "query-migrate-parameters",
  responses: { 200: { description: "Every parameter", ...json(ParametersSchema) } },
});

const patchParams = createRoute({
  method: "patch",
  path: "/parameters",
  tags: ["options"],
  summary: "migrate-set-parameters (JSON merge patch, all or nothing)",
  request: { body: { required: true, ...json(ParametersPatchSchema) } },
  responses: {
    200: { description: "Every parameter after the change", ...json(ParametersSchema) },
    ...problems(400),
  },
});

/** The options sub-app. */
export function optionRoutes(agent: Agent): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(getCaps, (c) => c.json(agent.capabilities, 200));
  app.openapi(
    patchCaps,
    (c) => c.json(agent.setCapabilities(c.req.valid("json") as Partial<Capabilities>), 200),
  );
  app.openapi(getParams, (c) => c.json(agent.parameters, 200));
  app.openapi(patchParams, (c) => c.json(agent.setParameters(c.req.valid("json")), 200));
  return app;
}
