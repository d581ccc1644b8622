/**
 * `/machine`: the guest's runstate and RAM layout, stop/cont, and the digest test aid.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problems } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
const tags = ["machine"];

const RunstateSchema = z.enum([
  "running",
  "paused",
  "inmigrate",
  "finish-migrate",
  "postmigrate",
  "colo",
]);

const MachineSchema = z.object({
  runstate: RunstateSchema,
  "ram-size": z.number(),
  "page-size": z.number(),
  blocks: z.array(z.object({ name: z.string(), size: z.number() })),
  workload: z.object({
    workload: z.string(),
    booted: z.boolean(),
    start: z.number(),
    end: z.number(),
    cursor: z.number(),
    passes: z.number(),
    "pages-written": z.number(),
    rate: z.number(),
    hot: z.number(),
    parked: z.boolean(),
  }).meta({ description: "The workload and the vCPU's registers." }),
  "cpu-throttle-percentage": z.number(),
}).meta({ id: "Machine" });

const DigestSchema = z.object({
  blocks: z.array(z.object({ name: z.string(), size: z.number(), sha256: z.string() })),
  "x-increment-check": z.object({
    ok: z.boolean(),
    steps: z.number(),
    start: z.number(),
    end: z.number(),
  }).optional().meta({ description: "migration-test's check, for the increment workload." }),
}).meta({ id: "MachineDigest" });

const RunstateReply = z.object({ runstate: RunstateSchema }).meta({ id: "Runstate" });

/** The machine sub-app. */
export function machineRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(
    createRoute({
      method: "get",
      path: "/machine",
      operationId: "queryStatus",
      tags,
      summary: "query-status and the RAM layout",
      responses: { 200: { description: "The guest", ...json(MachineSchema) }, ...problems() },
    }),
    (c) => c.json(agent().machine.info(), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/machine/stop",
      operationId: "stop",
      tags,
      summary: "stop",
      responses: { 202: { description: "Stopped", ...json(RunstateReply) }, ...problems(409, 415) },
    }),
    async (c) => c.json({ runstate: await agent().stopGuest() }, 202),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/machine/cont",
      operationId: "cont",
      tags,
      summary: "cont",
      responses: { 202: { description: "Running", ...json(RunstateReply) }, ...problems(409, 415) },
    }),
    (c) => c.json({ runstate: agent().contGuest() }, 202),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/machine/digest",
      operationId: "machineDigest",
      tags,
      summary: "SHA-256 of every RAM block (test aid)",
      responses: { 200: { description: "Digests", ...json(DigestSchema) }, ...problems() },
    }),
    async (c) => c.json(await agent().machine.digest(), 200),
  );
  return app;
}
