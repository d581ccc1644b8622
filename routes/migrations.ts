/**
 * `/migrations`: query-migrate, migrate (with `Idempotency-Key` and `?dry-run=true`),
 * migrate_cancel, migrate-incoming, and the history of migrations as resources.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import type { MigrationInfo } from "../domain/migration_info.ts";
import { DomainErrors } from "../domain/preflight.ts";
import { IdempotencyStore } from "./idempotency.ts";
import { BODY_PROBLEMS, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import {
  DryRunSchema,
  MigrateRequestSchema,
  MigrationInfoSchema,
  UriRequestSchema,
} from "./schemas.ts";

const tags = ["migrations"];

const getCurrent = createRoute({
  method: "get",
  path: "/migrations/current",
  operationId: "queryMigrate",
  tags,
  summary: "query-migrate",
  responses: {
    200: { description: "The current migration", ...json(MigrationInfoSchema) },
    ...problems(),
  },
});

const postMigration = createRoute({
  method: "post",
  path: "/migrations",
  operationId: "migrate",
  tags,
  summary: "migrate",
  description: [
    "Starts an outgoing migration (202, `Location: /migrations/{id}`).",
    "A migration that fails as it starts (an unknown scheme or unusable address, TLS",
    "credentials that cannot be used, a return path the channel cannot carry) goes `setup` →",
    "`failed` as in the seed and is answered with the error (400), whose `Location` and",
    "`x-id` name the failed migration; failures the data path finds (connection refused, a",
    "refused TLS handshake) follow a 202. Refusals before the start (a migration in",
    "progress, an incoming guest, blockers, a guest already migrated) are 409s that record",
    "nothing.",
    "With `?dry-run=true` it runs every check (state, blockers, capabilities, URI) and starts",
    "nothing: 200 when all pass, else a problem whose `errors` lists every problem.",
    "With `Idempotency-Key`, a retry with the same key and body gets the first accepted",
    "response again (with `Idempotent-Replayed: true`) and starts nothing; the same key with",
    "a different body is a 422. Only accepted requests are remembered (the last 256 keys).",
  ].join(" "),
  request: {
    query: z.object({
      "dry-run": z.enum(["true", "false"]).optional().meta({
        description: "Check only; start nothing.",
      }),
    }),
    headers: z.object({
      "idempotency-key": z.string().min(1).max(255).optional().meta({
        description: "Makes a retried request safe: the first accepted response is replayed.",
        example: "3f0c2a9e-retry-safe",
      }),
    }),
    body: { required: true, ...json(MigrateRequestSchema) },
  },
  responses: {
    200: { description: "Dry run: every check passed", ...json(DryRunSchema) },
    202: {
      description: "Started (or, with a reused Idempotency-Key, the first response again)",
      headers: z.object({
        Location: z.string().meta({ description: "/migrations/{id}" }),
        "Idempotent-Replayed": z.string().optional().meta({
          description: "`true` when this is a replayed response.",
        }),
      }),
      ...json(MigrationInfoSchema),
    },
    ...problems(...BODY_PROBLEMS, 409, 422),
  },
});

const listMigrations = createRoute({
  method: "get",
  path: "/migrations",
  operationId: "listMigrations",
  tags,
  summary: "Recent migrations (at most 32), newest first",
  responses: {
    200: { description: "Recent migrations", ...json(z.array(MigrationInfoSchema)) },
    ...problems(),
  },
});

const getMigration = createRoute({
  method: "get",
  path: "/migrations/{id}",
  operationId: "getMigration",
  tags,
  summary: "One migration",
  request: { params: z.object({ id: z.string().max(128) }) },
  responses: {
    200: { description: "The migration", ...json(MigrationInfoSchema) },
    ...problems(400, 404),
  },
});

const cancel = createRoute({
  method: "post",
  path: "/migrations/current/cancel",
  operationId: "migrateCancel",
  tags,
  summary: "migrate_cancel",
  description: "Refused (409) once the migration is past its point of no return: the " +
    "destination may already run the guest (in postcopy: pause instead).",
  responses: {
    202: { description: "Cancelling", ...json(MigrationInfoSchema) },
    ...problems(409, 415),
  },
});

const incoming = createRoute({
  method: "post",
  path: "/migrations/incoming",
  operationId: "migrateIncoming",
  tags,
  summary: "migrate-incoming (with --incoming defer)",
  request: { body: { required: true, ...json(UriRequestSchema) } },
  responses: {
    202: { description: "Listening", ...json(MigrationInfoSchema) },
    ...problems(...BODY_PROBLEMS, 409),
  },
});

/** The `/migrations` sub-app. */
export function migrationRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  // Idempotency-Key: the first accepted answer per key (one app serves one agent).
  const accepted = new IdempotencyStore<MigrationInfo>();
  app.openapi(getCurrent, (c) => c.json(agent().query(), 200));
  app.openapi(listMigrations, (c) => c.json(agent().list(), 200));
  app.openapi(cancel, (c) => c.json(agent().cancelMigration(), 202));
  app.openapi(postMigration, (c) => {
    const body = c.req.valid("json");
    if (c.req.valid("query")["dry-run"] === "true") {
      // Every check, nothing started: all the problems at once.
      const found = agent().migrationProblems(body);
      if (found.length > 0) throw new DomainErrors(found);
      return c.json({ "dry-run": true as const, ok: true as const }, 200);
    }
    const key = c.req.valid("header")["idempotency-key"];
    const { value: info, replayed } = key === undefined
      ? { value: agent().migrate(body), replayed: false }
      : accepted.run(key, body, () => agent().migrate(body));
    c.header("Location", `/migrations/${info["x-id"]}`);
    if (replayed) c.header("Idempotent-Replayed", "true");
    return c.json(info, 202);
  });
  app.openapi(
    incoming,
    async (c) => c.json(await agent().startIncoming(c.req.valid("json").uri), 202),
  );
  app.openapi(getMigration, (c) => c.json(agent().get(c.req.valid("param").id), 200));
  return app;
}
