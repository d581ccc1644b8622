/**
 * The guest's I/O: `GET /machine/output` (Server-Sent Events of its output records, with
 * `Last-Event-ID` replay from a bounded backlog) and `POST /machine/input` (raw bytes
 * appended to its stdin).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { MAX_SSE_SUBSCRIBERS, StreamSlots } from "./limits.ts";
import { problem, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { HEARTBEAT_MS } from "./events.ts";
import type { OutputLog, OutputRecord } from "../adapters/wasm/output_log.ts";

const tags = ["machine"];

/** An output record's `data`. */
export const OutputRecordSchema = z.object({
  seq: z.number().int().min(1).meta({
    description: "Counts the guest's writes from 1 over its whole life, across migrations.",
  }),
  stream: z.enum(["stdout", "stderr"]),
  text: z.string().optional().meta({ description: "The bytes written, when they are UTF-8." }),
  base64: z.string().optional().meta({ description: "The bytes written, otherwise." }),
}).meta({ id: "OutputRecord" });

const output = createRoute({
  method: "get",
  path: "/machine/output",
  operationId: "machineOutput",
  tags,
  summary: "The guest's output records (text/event-stream)",
  description: "`event: output`, `id: <seq>`, `data:` an OutputRecord, one per write the " +
    "guest made to stdout or stderr. Without `Last-Event-ID` the stream starts with the " +
    "records kept (the last 100000, at most 16 MiB); with it, after that record. A " +
    "destination continues the source's numbering. A `: heartbeat` comment keeps idle " +
    "streams open; a reader more than 4096 records behind is disconnected (it reconnects " +
    "with Last-Event-ID).",
  request: {
    headers: z.object({
      "last-event-id": z.string().max(32).optional().meta({
        description: "The seq of the last record received; the stream starts after it.",
      }),
    }),
  },
  "x-events": { output: { $ref: "#/components/schemas/OutputRecord" } },
  responses: { 200: { description: "An event stream (text/event-stream)" }, ...problems(503) },
});

const input = createRoute({
  method: "post",
  path: "/machine/input",
  operationId: "machineInput",
  tags,
  summary: "Append bytes to the guest's stdin",
  description: "The request body's bytes, as sent (any content type), go to the end of the " +
    "guest's stdin. 409 when the guest takes no input (no WebAssembly guest, or it has " +
    "ended), its unread input already fills the 1 MiB buffer (a COLO primary's input waiting " +
    "for the COLO loop counts too), it has not arrived yet " +
    "(runstate inmigrate), or a migration took its state (runstate finish-migrate or " +
    "postmigrate): input accepted is never lost, it travels with the guest's state, and input " +
    "sent after that state was taken is refused until the guest runs here again; send it to " +
    "the destination once the guest runs there.",
  responses: {
    202: { description: "Appended", ...json(z.object({ bytes: z.number() })) },
    ...problems(409, 413),
  },
});

const encoder = new TextEncoder();
const SSE_HEADERS = {
  "content-type": "text/event-stream",
  "cache-control": "no-cache",
  "connection": "keep-alive",
};
/** Records a reader may fall behind before its stream is ended. */
const MAX_BEHIND = 4096;

function frame(r: OutputRecord): Uint8Array {
  return encoder.encode(`event: output\nid: ${r.seq}\ndata: ${JSON.stringify(r)}\n\n`);
}

function outputStream(
  log: OutputLog,
  last: number,
  heartbeatMs: number,
  release: () => void,
): ReadableStream<Uint8Array> {
  let beat: ReturnType<typeof setInterval> | undefined;
  let unsubscribe = () => {};
  let pending: OutputRecord[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  let sent = last;
  const finish = () => {
    done = true;
    clearInterval(beat);
    unsubscribe();
    release();
    wake?.();
  };
  return new ReadableStream<Uint8Array>({
    start(controller) {
      pending = log.shown(last);
      unsubscribe = log.subscribe((r) => {
        pending.push(r);
        if (pending.length > MAX_BEHIND) finish();
        wake?.();
      });
      beat = setInterval(() => {
        try {
          if ((controller.desiredSize ?? 0) >= 0) {
            controller.enqueue(encoder.encode(": heartbeat\n\n"));
          }
        } catch {
          finish();
        }
      }, heartbeatMs);
      controller.enqueue(encoder.encode(": ferry output\n\n"));
    },
    async pull(controller) {
      while (!done && pending.length === 0) await new Promise<void>((r) => (wake = r));
      wake = null;
      if (done) {
        try {
          controller.close();
        } catch { /* already closed */ }
        return;
      }
      const batch = pending.filter((r) => r.seq > sent);
      pending = [];
      if (batch.length === 0) return;
      sent = batch[batch.length - 1].seq;
      const parts = batch.map(frame);
      const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
      let at = 0;
      for (const p of parts) out.set(p, at), at += p.length;
      controller.enqueue(out);
    },
    cancel() {
      finish();
    },
  }, { highWaterMark: 0 });
}

/** The guest I/O sub-app; `slots` bound the open streams (shared with `GET /events`). */
export function machineIoRoutes(
  agent: AgentRef,
  heartbeatMs = HEARTBEAT_MS,
  slots: StreamSlots = new StreamSlots(MAX_SSE_SUBSCRIBERS),
): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openAPIRegistry.register("OutputRecord", OutputRecordSchema);
  app.openapi(output, (c) => {
    const header = c.req.header("last-event-id");
    const last = header && /^\d+$/.test(header) ? Number(header) : 0;
    const release = slots.take();
    if (release === null) {
      return problem(
        c,
        503,
        `Too many event streams open (${slots.max}, --max-sse-subscribers); retry later`,
      );
    }
    const body = outputStream(agent().machine.output, last, heartbeatMs, release);
    return new Response(body, { headers: SSE_HEADERS });
  });
  app.openapi(input, async (c) => {
    const bytes = new Uint8Array(await c.req.arrayBuffer());
    agent().guestInput(bytes);
    return c.json({ bytes: bytes.length }, 202);
  });
  return app;
}
