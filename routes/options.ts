/**
 * `/capabilities` and `/parameters`: query and merge-patch the migration options, with a
 * strong `ETag` on every reply and `If-Match` honoured on PATCH.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MiddlewareHandler } from "hono";
import { exactValues, parseJsonExact } from "../domain/exact_json.ts";
import {
  CapabilitiesPatchSchema,
  CapabilitiesSchema,
  ParametersPatchSchema,
  ParametersSchema,
} from "../domain/option_schemas.ts";
import type { Capabilities } from "../domain/options.ts";
import { etagOf, requireIfMatch } from "./etag.ts";
import { BODY_PROBLEMS, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";

const tags = ["options"];
const etag = z.object({
  ETag: z.string().meta({ description: "Strong tag of the whole map; send it as If-Match." }),
});
const ifMatch = z.object({
  "if-match": z.string().max(1024).optional().meta({
    description: "Apply only if the map still has this ETag (else 412).",
  }),
});

const getCaps = createRoute({
  method: "get",
  path: "/capabilities",
  operationId: "queryMigrateCapabilities",
  tags,
  summary: "query-migrate-capabilities",
  responses: {
    200: { description: "Every capability", headers: etag, ...json(CapabilitiesSchema) },
    ...problems(),
  },
});

const patchCaps = createRoute({
  method: "patch",
  path: "/capabilities",
  operationId: "migrateSetCapabilities",
  tags,
  summary: "migrate-set-capabilities (JSON merge patch)",
  request: { headers: ifMatch, body: { required: true, ...json(CapabilitiesPatchSchema) } },
  responses: {
    200: {
      description: "Every capability after the change",
      headers: etag,
      ...json(CapabilitiesSchema),
    },
    ...problems(...BODY_PROBLEMS, 409, 412),
  },
});

const getParams = createRoute({
  method: "get",
  path: "/parameters",
  operationId: "queryMigrateParameters",
  tags,
  summary: "query-migrate-parameters",
  responses: {
    200: { description: "Every parameter", headers: etag, ...json(ParametersSchema) },
    ...problems(),
  },
});

/**
 * The body of a parameters PATCH is read with exact integers: a size beyond 2^53 arrives
 * as a bigint, digit for digit, where `JSON.parse` would round it (the validator after this
 * reads `c.req.json()`).
 */
const exactJsonBody: MiddlewareHandler = async (c, next) => {
  c.req.json = (async () => parseJsonExact(await c.req.text())) as typeof c.req.json;
  await next();
};

const patchParams = createRoute({
  method: "patch",
  path: "/parameters",
  middleware: [exactJsonBody] as const,
  operationId: "migrateSetParameters",
  tags,
  summary: "migrate-set-parameters (JSON merge patch, all or nothing)",
  request: { headers: ifMatch, body: { required: true, ...json(ParametersPatchSchema) } },
  responses: {
    200: {
      description: "Every parameter after the change",
      headers: etag,
      ...json(ParametersSchema),
    },
    ...problems(...BODY_PROBLEMS, 412),
  },
});

/** The options sub-app. */
export function optionRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(getCaps, (c) => {
    const value = agent().capabilities;
    return c.json(value, 200, { ETag: etagOf(value) });
  });
  app.openapi(patchCaps, (c) => {
    const patch = c.req.valid("json") as Partial<Capabilities>;
    requireIfMatch(c.req.valid("header")["if-match"], agent().capabilities, "capabilities");
    const value = agent().setCapabilities(patch);
    return c.json(value, 200, { ETag: etagOf(value) });
  });
  app.openapi(getParams, (c) => {
    const value = agent().parameters;
    return c.json(exactValues(value), 200, { ETag: etagOf(value) });
  });
  app.openapi(patchParams, (c) => {
    const patch = c.req.valid("json");
    requireIfMatch(c.req.valid("header")["if-match"], agent().parameters, "parameters");
    const value = agent().setParameters(patch);
    return c.json(exactValues(value), 200, { ETag: etagOf(value) });
  });
  return app;
}
