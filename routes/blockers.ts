/**
 * `/blockers` (migrate_add_blocker / migrate_del_blocker) and `/globals`
 * (migration_global_dump).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { BODY_PROBLEMS, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { BlockerRequestSchema, BlockerSchema, GlobalsSchema } from "./schemas.ts";

const tags = ["blockers"];

const listBlockers = createRoute({
  method: "get",
  path: "/blockers",
  operationId: "listBlockers",
  tags,
  summary: "The registered migration blockers, oldest first",
  responses: {
    200: { description: "Blockers", ...json(z.array(BlockerSchema)) },
    ...problems(),
  },
});

const addBlocker = createRoute({
  method: "post",
  path: "/blockers",
  operationId: "migrateAddBlocker",
  tags,
  summary: "migrate_add_blocker",
  description: "While any blocker is registered, migrate fails (409) with the newest one's " +
    "reason. Refused while a migration runs and under --only-migratable.",
  request: { body: { required: true, ...json(BlockerRequestSchema) } },
  responses: {
    201: {
      description: "Registered",
      headers: z.object({ Location: z.string().meta({ description: "/blockers/{id}" }) }),
      ...json(BlockerSchema),
    },
    ...problems(...BODY_PROBLEMS, 409),
  },
});

const deleteBlocker = createRoute({
  method: "delete",
  path: "/blockers/{id}",
  operationId: "migrateDelBlocker",
  tags,
  summary: "migrate_del_blocker",
  request: { params: z.object({ id: z.string().max(128) }) },
  responses: { 204: { description: "Removed" }, ...problems(400, 404) },
});

const globals = createRoute({
  method: "get",
  path: "/globals",
  operationId: "migrationGlobalDump",
  tags,
  summary: "migration_global_dump: the non-option migration globals",
  responses: { 200: { description: "Globals", ...json(GlobalsSchema) }, ...problems() },
});

/** The blockers and globals sub-app. */
export function blockerRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(listBlockers, (c) => c.json(agent().listBlockers(), 200));
  app.openapi(addBlocker, (c) => {
    const blocker = agent().addBlocker(c.req.valid("json").reason);
    return c.json(blocker, 201, { Location: `/blockers/${blocker.id}` });
  });
  app.openapi(deleteBlocker, (c) => {
    agent().removeBlocker(c.req.valid("param").id);
    return c.body(null, 204);
  });
  app.openapi(globals, (c) => c.json(agent().globals(), 200));
  return app;
}
