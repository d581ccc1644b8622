/**
 * `GET /events`: Server-Sent Events from the agent's event bus, with `Last-Event-ID`
 * replay and a comment heartbeat. The typed `content` is left off this route's response
 * (honojs/middleware#735); the event payloads are described in the text.
 *
 * @module
 */
import { createRoute, OpenAPIHono } from "@hono/zod-openapi";
import { streamSSE } from "hono/streaming";
import type { EventBus } from "../domain/event_bus.ts";

const HEARTBEAT_MS = 15_000;

const events = createRoute({
  method: "get",
  path: "/events",
  tags: ["events"],
  summary: "Migration events (text/event-stream)",
  description: [
    "`event: MIGRATION` `data: {\"status\", \"side\", \"id\"}` on every status change;",
    "`event: MIGRATION_PASS` `data: {\"pass\"}` at each dirty-log sync;",
    "`event: progress` `data: MigrationInfo` about every 250 ms while a migration runs.",
    "Every event has an id; reconnect with Last-Event-ID to replay what was missed.",
  ].join(" "),
  responses: { 200: { description: "An event stream (text/event-stream)" } },
});

/** The events sub-app. */
export function eventRoutes(bus: EventBus): OpenAPIHono {
  const app = new OpenAPIHono();
  app.openapi(events, (c) => {
    const header = c.req.header("last-event-id");
    const last = header && /^\d+$/.test(header) ? Number(header) : undefined;
    return streamSSE(c, async (stream) => {
      const sub = bus.subscribe(last);
      stream.onAbort(() => sub.close());
      const beat = setInterval(() => stream.write(": heartbeat\n\n").catch(() => sub.close()), HEARTBEAT_MS);
      try {
        await stream.write(": ferry events\n\n");
        for (;;) {
          const e = await sub.next();
          if (!e) break;
          await stream.writeSSE({ id: String(e.id), event: e.event, data: JSON.stringify(e.data) });
        }
      } finally {
        clearInterval(beat);
        sub.close();
      }
    }) as unknown as Response;
  });
  return app;
}
