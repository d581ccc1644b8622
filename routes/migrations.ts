/**
 * `/migrations`: query-migrate, migrate, migrate_cancel, migrate-incoming, and the
 * history of migrations as resources.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { Agent } from "../domain/agent.ts";
import { problems, validationHook } from "./problem.ts";
import { MigrateRequestSchema, MigrationInfoSchema, UriRequestSchema } from "./schemas.ts";

const json = <T>(schema: T) => ({ content: { "application/json": { schema } } });
const tags = ["migrations"];

const getCurrent = createRoute({
  method: "get",
  path: "/migrations/current",
  tags,
  summary: "query-migrate",
  responses: { 200: { description: "The current migration", ...json(MigrationInfoSchema) } },
});

const postMigration = createRoute({
  method: "post",
  path: "/migrations",
  tags,
  summary: "migrate",
  request: { body: { required: true, ...json(MigrateRequestSchema) } },
  responses: {
    202: {
      description: "Started",
      headers: z.object({ Location: z.string() }),
      ...json(MigrationInfoSchema),
    },
    ...problems(400, 409),
  },
});

const listMigrations = createRoute({
  method: "get",
  path: "/migrations",
  tags,
  summary: "Recent migrations, newest first",
  responses: { 200: { description: "Recent migrations", ...json(z.array(MigrationInfoSchema)) } },
});

const getMigration = createRoute({
  method: "get",
  path: "/migrations/{id}",
  tags,
  summary: "One migration",
  request: { params: z.object({ id: z.string().max(128) }) },
  responses: {
    200: { description: "The migration", ...json(MigrationInfoSchema) },
    ...problems(404),
  },
});

const cancel = createRoute({
  method: "post",
  path: "/migrations/current/cancel",
  tags,
  summary: "migrate_cancel",
  responses: { 202: { description: "Cancelling", ...json(MigrationInfoSchema) } },
});

const incoming = createRoute({
  method: "post",
  path: "/migrations/incoming",
  tags,
  summary: "migrate-incoming (with --incoming defer)",
  request: { body: { required: true, ...json(UriRequestSchema) } },
  responses: {
    202: { description: "Listening", ...json(MigrationInfoSchema) },
    ...problems(400, 409),
  },
});

/** The `/migrations` sub-app. */
export function migrationRoutes(agent: Agent): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(getCurrent, (c) => c.json(agent.query(), 200));
  app.openapi(listMigrations, (c) => c.json(agent.list(), 200));
  app.openapi(cancel, (c) => {
    agent.cancel();
    return c.json(agent.query(), 202);
  });
  app.openapi(postMigration, (c) => {
    const info = agent.migrate(c.req.valid("json"));
    c.header("Location", `/migrations/${info["x-id"]}`);
    return c.json(info, 202);
  });
  app.openapi(incoming, async (c) => c.json(await agent.startIncoming(c.req.valid("json").uri), 202));
  app.openapi(getMigration, (c) => c.json(agent.get(c.req.valid("param").id), 200));
  return app;
}
