/**
 * COLO: query-colo-status and x-colo-lost-heartbeat, and the COLO_EXIT event's schema. Each
 * handler makes one domain call.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problems } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { eventTime } from "./schemas.ts";

const tags = ["colo"];
const MODES = ["primary", "secondary", "none"] as const;

/** `GET /colo`: QEMU's COLOStatus. */
export const ColoStatusSchema = z.object({
  mode: z.enum(MODES).meta({
    description: "primary (this agent sends checkpoints), secondary (it receives them) or none.",
  }),
  "last-mode": z.enum(MODES).meta({ description: "The mode before COLO was last left." }),
  reason: z.enum(["none", "request", "error", "processing"]).meta({
    description: "Why COLO was left: request (lost-heartbeat, or the peer's announced exit), " +
      "error (the peer died, or the arbiter decided), processing (the peer is lost: this side " +
      "holds and waits for lost-heartbeat, or for the arbiter's verdict), none.",
  }),
  "x-arbiter": z.object({
    state: z.enum(["idle", "leased", "claiming", "won", "lost", "fenced"]).meta({
      description: "idle (not in COLO), leased (in COLO), claiming (the peer is lost), won " +
        "(this side holds the key and runs on), lost (the peer holds it: this side stopped), " +
        "fenced (this side's lease lapsed: it stopped).",
    }),
    key: z.string().meta({ description: "The etcd key the pair claims." }),
    lease: z.string().nullable().meta({ description: "This side's etcd lease id, or null." }),
    error: z.string().nullable().meta({
      description: "The last error talking to etcd since the state changed, or null.",
    }),
  }).optional().meta({
    description: "With --colo-arbiter: which side runs on when the two lose each other.",
  }),
}).meta({ id: "ColoStatus" });

/** `event: COLO_EXIT` data. */
export const ColoExitEventSchema = z.object({
  mode: z.enum(["primary", "secondary"]),
  reason: z.enum(["request", "error"]),
  time: eventTime,
}).meta({ id: "ColoExitEvent", description: "QEMU's COLO_EXIT: this agent left COLO." });

const status = createRoute({
  method: "get",
  path: "/colo",
  operationId: "queryColoStatus",
  tags,
  summary: "query-colo-status",
  description: "The agent's COLO mode, the mode it had before, and why it left COLO.",
  responses: { 200: { description: "The COLO status", ...json(ColoStatusSchema) } },
});

const lostHeartbeat = createRoute({
  method: "post",
  path: "/colo/lost-heartbeat",
  operationId: "xColoLostHeartbeat",
  tags,
  summary: "x-colo-lost-heartbeat",
  description: "Failover: on the secondary it leaves COLO and runs the guest on alone; on the " +
    "primary it stops checkpointing and its guest runs on alone. The side sends an exit to " +
    "its peer first (when the link still works), which then stops its guest. 409 outside COLO.",
  responses: {
    202: { description: "Failover requested", ...json(ColoStatusSchema) },
    ...problems(409, 415),
  },
});

/** The COLO sub-app. */
export function coloRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(status, (c) => c.json(agent().colo.status(), 200));
  app.openapi(lostHeartbeat, (c) => {
    agent().colo.lostHeartbeat();
    return c.json(agent().colo.status(), 202);
  });
  return app;
}
