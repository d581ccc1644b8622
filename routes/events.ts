/**
 * `GET /events`: Server-Sent Events from the agent's event bus, with `Last-Event-ID`
 * replay and a comment heartbeat. A subscriber the bus drops for falling behind has its
 * stream ended (it reconnects with Last-Event-ID). The typed `content` is left off this
 * route's response (honojs/middleware#735); the payloads are described by the component
 * schemas named in the operation's `x-events` extension.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import { problems, validationHook } from "./problem.ts";
import type { AgentRef } from "./route_kit.ts";
import type { FerryEvent } from "../domain/event_bus.ts";

/** The default heartbeat period. */
export const HEARTBEAT_MS = 15_000;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

const events = createRoute({
  method: "get",
  path: "/events",
  operationId: "events",
  tags: ["events"],
  summary: "Migration events (text/event-stream)",
  description: [
    "`event: MIGRATION` with `data:` a MigrationEvent on every status change, in order;",
    "`event: MIGRATION_PASS` with a MigrationPassEvent at each dirty-log sync;",
    "`event: progress` with a MigrationInfo about every 250 ms while a migration runs.",
    "Every event has an `id:`; reconnect with `Last-Event-ID` to replay what was missed",
    "(the last 2048 events are kept). A `: heartbeat` comment keeps idle streams open.",
    "A subscriber more than 4096 events behind is disconnected; it can reconnect and replay.",
    "The `x-events` extension maps each event name to the schema of its `data`.",
  ].join(" "),
  request: {
    headers: z.object({
      "last-event-id": z.string().max(32).optional().meta({
        description: "The id of the last event received; the stream starts after it.",
      }),
    }),
  },
  "x-events": {
    MIGRATION: ref("MigrationEvent"),
    MIGRATION_PASS: ref("MigrationPassEvent"),
    progress: ref("MigrationInfo"),
  },
  responses: { 200: { description: "An event stream (text/event-stream)" }, ...problems(400) },
});

const texts = new WeakMap<FerryEvent, string>();

/** An event's JSON, made once however many subscribers send it. */
function serialized(e: FerryEvent): string {
  let t = texts.get(e);
  if (t === undefined) texts.set(e, t = JSON.stringify(e.data));
  return t;
}

/** The events sub-app; `heartbeatMs` is the comment period. */
export function eventRoutes(agent: AgentRef, heartbeatMs = HEARTBEAT_MS): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(events, (c) => {
    const header = c.req.header("last-event-id");
    const last = header && /^\d+$/.test(header) ? Number(header) : undefined;
    const bus = agent().events;
    return streamSSE(c, async (stream) => {
      const sub = bus.subscribe(last, () => stream.abort());
      stream.onAbort(() => sub.close());
      const beat = setInterval(() => void stream.write(": heartbeat\n\n"), heartbeatMs);
      try {
        await stream.write(": ferry events\n\n");
        for (;;) {
          const e = await sub.next();
          if (!e || stream.aborted) break;
          await stream.writeSSE({ id: String(e.id), event: e.event, data: serialized(e) });
        }
      } finally {
        clearInterval(beat);
        sub.close();
      }
    }) as unknown as Response;
  });
  return app;
}
