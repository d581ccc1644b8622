/**
 * `GET /events`: Server-Sent Events from the agent's event bus, with `Last-Event-ID`
 * replay and a comment heartbeat. A subscriber the bus drops for falling behind has its
 * stream ended (it reconnects with Last-Event-ID). Each open stream holds one of the
 * `--max-sse-subscribers` slots; beyond them a new stream gets 503. The typed `content` is left off this
 * route's response (honojs/middleware#735); the payloads are described by the component
 * schemas named in the operation's `x-events` extension.
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { MAX_SSE_SUBSCRIBERS, StreamSlots } from "./limits.ts";
import { problem, problems, validationHook } from "./problem.ts";
import type { AgentRef } from "./route_kit.ts";
import type { EventBus, FerryEvent } from "../domain/event_bus.ts";
import type { FerryEventName } from "../domain/events.ts";

/** The default heartbeat period. */
export const HEARTBEAT_MS = 15_000;

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });

/**
 * Each event the agent publishes → the schema of its `data` (components registered in
 * app.ts). Typed against the domain's catalogue: an event added there without a schema
 * here does not compile.
 */
export const EVENT_SCHEMAS: Record<FerryEventName, { $ref: string }> = {
  MIGRATION: ref("MigrationEvent"),
  MIGRATION_PASS: ref("MigrationPassEvent"),
  MIGRATION_CONVERGENCE: ref("MigrationConvergenceEvent"),
  MIGRATION_POLICY: ref("MigrationPolicyEvent"),
  COLO_EXIT: ref("ColoExitEvent"),
  progress: ref("ProgressEvent"),
};

const events = createRoute({
  method: "get",
  path: "/events",
  operationId: "events",
  tags: ["events"],
  summary: "Migration events (text/event-stream)",
  description: [
    "`event: MIGRATION` with `data:` a MigrationEvent on every status change, in order;",
    "`event: MIGRATION_PASS` with a MigrationPassEvent at each dirty-log sync;",
    "`event: progress` with a MigrationInfo about every 250 ms while a migration runs;",
    "Ferry's own `event: MIGRATION_CONVERGENCE` when an outgoing precopy's convergence verdict",
    "changes and `event: MIGRATION_POLICY` when its x-policy fires;",
    "`event: COLO_EXIT` with a ColoExitEvent when the agent leaves COLO.",
    "Every event has an `id:`; reconnect with `Last-Event-ID` to replay what was missed",
    "(the last 2048 events are kept). A `: heartbeat` comment keeps idle streams open.",
    "A subscriber more than 4096 events behind is disconnected; it can reconnect and replay.",
    "At most `--max-sse-subscribers` streams are open at once (default 256); beyond that 503.",
    "Every event's `data` has a `time` member: when the agent published it (ISO 8601, UTC),",
    "so a replayed event keeps its own time.",
    "The `x-events` extension maps each event name to the schema of its `data`.",
  ].join(" "),
  request: {
    headers: z.object({
      "last-event-id": z.string().max(32).optional().meta({
        description: "The id of the last event received; the stream starts after it.",
      }),
    }),
  },
  "x-events": EVENT_SCHEMAS,
  responses: {
    200: { description: "An event stream (text/event-stream)" },
    ...problems(400, 503),
  },
});

const frames = new WeakMap<FerryEvent, Uint8Array>();
const encoder = new TextEncoder();

/**
 * An event's data as sent: an object gets a `time` member, when the agent published it (ISO
 * 8601, UTC), so a replayed event says when it happened, not when it was received. (QMP puts
 * its `timestamp` beside `data`; an SSE frame has no place beside `data`.)
 */
function wireData(e: FerryEvent): unknown {
  const d = e.data;
  if (d === null || typeof d !== "object" || Array.isArray(d)) return d;
  return { ...d, time: new Date(e.time).toISOString() };
}

/**
 * An event as the bytes of one SSE frame (`event:`, `data:`, `id:`), made once however many
 * subscribers send it: 200 subscribers cost one JSON.stringify and one encode, not 200.
 */
function frameOf(e: FerryEvent): Uint8Array {
  let f = frames.get(e);
  if (f === undefined) {
    const json = JSON.stringify(wireData(e));
    const data = json.split("\n").map((l) => `data: ${l}\n`).join("");
    frames.set(e, f = encoder.encode(`event: ${e.event}\n${data}id: ${e.id}\n\n`));
  }
  return f;
}

/** The frames of `events` as one write. */
function framesOf(events: readonly FerryEvent[]): Uint8Array {
  if (events.length === 1) return frameOf(events[0]);
  const parts = events.map(frameOf);
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "connection": "keep-alive",
};
const OPENING = encoder.encode(": ferry events\n\n");
const HEARTBEAT = encoder.encode(": heartbeat\n\n");

/**
 * One subscriber's byte stream: the opening comment, then every event (a burst in one
 * chunk) as the server pulls for more, and a heartbeat comment every `heartbeatMs`. The
 * body is a plain ReadableStream the server reads directly (no TransformStream or
 * per-write helper between the bus and the socket): with hundreds of subscribers each
 * event costs hundreds of writes, so each must be cheap. Dropped or cancelled, it
 * unsubscribes and gives back its slot (`release`).
 */
function eventStream(
  bus: EventBus,
  last: number | undefined,
  heartbeatMs: number,
  release: () => void,
): ReadableStream<Uint8Array> {
  let beat: ReturnType<typeof setInterval> | undefined;
  let sub: ReturnType<EventBus["subscribe"]> | undefined;
  let done = false;
  const finish = () => {
    done = true;
    clearInterval(beat);
    sub?.close();
    release();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      sub = bus.subscribe(last, () => {
        finish();
        try {
          controller.close();
        } catch { /* already closed */ }
      });
      beat = setInterval(() => {
        try {
          // Only into an empty queue: a reader that is not reading gets no pile of comments.
          if ((controller.desiredSize ?? 0) >= 0) controller.enqueue(HEARTBEAT);
        } catch {
          finish();
        }
      }, heartbeatMs);
      controller.enqueue(OPENING);
    },
    async pull(controller) {
      const batch = done ? [] : await sub!.nextAll();
      if (done) return;
      if (batch.length === 0) {
        finish();
        controller.close();
        return;
      }
      controller.enqueue(framesOf(batch));
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: 0 });
}

/**
 * The events sub-app; `heartbeatMs` is the comment period, `slots` bound the open streams
 * (shared with any other event-stream route).
 */
export function eventRoutes(
  agent: AgentRef,
  heartbeatMs = HEARTBEAT_MS,
  slots: StreamSlots = new StreamSlots(MAX_SSE_SUBSCRIBERS),
): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(events, (c) => {
    const header = c.req.header("last-event-id");
    const last = header && /^\d+$/.test(header) ? Number(header) : undefined;
    const release = slots.take();
    if (release === null) {
      return problem(
        c,
        503,
        `Too many event streams open (${slots.max}, --max-sse-subscribers); retry later`,
      );
    }
    const body = eventStream(agent().events, last, heartbeatMs, release);
    return new Response(body, { headers: SSE_HEADERS });
  });
  return app;
}
