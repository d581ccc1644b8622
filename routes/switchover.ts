/**
 * Switchover control: migrate-start-postcopy, migrate-continue, migrate-pause and
 * migrate-recover. Each handler makes one domain call; refusals are the seed's texts.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { MIGRATION_STATUSES } from "../domain/state_machine.ts";
import { BODY_PROBLEMS, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { MigrationInfoSchema, UriRequestSchema } from "./schemas.ts";

const tags = ["migrations"];

const ContinueSchema = z.object({
  state: z.enum(MIGRATION_STATUSES).meta({
    description: "The state the migration is paused in (pre-switchover).",
    example: "pre-switchover",
  }),
}).strict().meta({ id: "ContinueRequest" });

const postcopy = createRoute({
  method: "post",
  path: "/migrations/current/postcopy",
  operationId: "migrateStartPostcopy",
  tags,
  summary: "migrate-start-postcopy",
  description: "Switches the running migration to postcopy once the precopy pending size allows " +
    "(needs the postcopy-ram capability).",
  responses: {
    202: { description: "Postcopy requested", ...json(MigrationInfoSchema) },
    ...problems(409, 415),
  },
});

const cont = createRoute({
  method: "post",
  path: "/migrations/current/continue",
  operationId: "migrateContinue",
  tags,
  summary: "migrate-continue",
  description: "Releases a migration paused in pre-switchover (pause-before-switchover).",
  request: { body: { required: true, ...json(ContinueSchema) } },
  responses: {
    202: { description: "Continuing", ...json(MigrationInfoSchema) },
    ...problems(...BODY_PROBLEMS, 409),
  },
});

const pause = createRoute({
  method: "post",
  path: "/migrations/current/pause",
  operationId: "migratePause",
  tags,
  summary: "migrate-pause",
  description: "Pauses a postcopy migration (source or destination) by shutting its channel; " +
    "both sides go to postcopy-paused and wait for a recovery.",
  responses: {
    202: { description: "Pausing", ...json(MigrationInfoSchema) },
    ...problems(409, 415),
  },
});

const recover = createRoute({
  method: "post",
  path: "/migrations/incoming/recover",
  operationId: "migrateRecover",
  tags,
  summary: "migrate-recover (destination)",
  description: "Listens on a new URI for the source's resumed postcopy stream, and answers once " +
    "it listens (an address it cannot listen on is a 400). Then resume on the source with " +
    '`POST /migrations {"uri": ..., "resume": true}`. A destination still postcopy-active is ' +
    "given a moment (at most 2 s) to notice that its source paused before this is refused. " +
    "As in the seed, a MIGRATION event `setup` announces the start; the status stays " +
    "postcopy-paused.",
  request: { body: { required: true, ...json(UriRequestSchema) } },
  responses: {
    202: { description: "Listening for the recovery", ...json(MigrationInfoSchema) },
    ...problems(...BODY_PROBLEMS, 409),
  },
});

/** The switchover-control sub-app. */
export function switchoverRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(postcopy, (c) => c.json(agent().startPostcopy(), 202));
  app.openapi(cont, (c) => c.json(agent().continueMigration(c.req.valid("json").state), 202));
  app.openapi(pause, (c) => c.json(agent().pauseMigration(), 202));
  app.openapi(
    recover,
    async (c) => c.json(await agent().recoverIncoming(c.req.valid("json").uri), 202),
  );
  return app;
}
