/**
 * Test helper: a Server-Sent Events client over fetch that records every event, and the
 * stream's items (events and comments) for tests that read a body themselves.
 *
 * @module
 */
import { createParser } from "eventsource-parser";

/** One received event. */
export interface SseEvent {
  id: string;
  event: string;
  data: unknown;
}

/** A live subscription that collects events until closed. */
export interface SseRecorder {
  events: SseEvent[];
  /** Resolves when an event satisfies `pred` (already received ones count). */
  waitFor(pred: (e: SseEvent) => boolean, timeoutMs?: number): Promise<SseEvent>;
  close(): Promise<void>;
}

/** One item of an event stream: an event, or a comment line. */
export type SseItem =
  | { kind: "event"; id: string; event: string; data: string }
  | { kind: "comment"; text: string };

/**
 * The events and comments of an event-stream body, in order, parsed by
 * npm:eventsource-parser (the parser the dashboard, ctl and the bench use too).
 */
export function sseItems(body: ReadableStream<Uint8Array>): ReadableStream<SseItem> {
  let parser: ReturnType<typeof createParser>;
  return body.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, SseItem>({
      start(out) {
        parser = createParser({
          onEvent: (e) =>
            out.enqueue({
              kind: "event",
              id: e.id ?? "",
              event: e.event ?? "message",
              data: e.data,
            }),
          onComment: (text) => out.enqueue({ kind: "comment", text: text.trim() }),
        });
      },
      transform(chunk) {
        parser.feed(chunk);
      },
    }),
  );
}

/** Subscribes to `${base}${path}` (`/events`, `/machine/output`), optionally from `lastEventId`. */
export async function recordEvents(
  base: string,
  lastEventId?: string,
  path = "/events",
): Promise<SseRecorder> {
  const ac = new AbortController();
  const r = await fetch(`${base}${path}`, {
    signal: ac.signal,
    headers: lastEventId ? { "last-event-id": lastEventId } : {},
  });
  const events: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  const reader = sseItems(r.body!).getReader();
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        if (value.kind === "comment") continue;
        events.push({ id: value.id, event: value.event, data: JSON.parse(value.data || '""') });
        waiters.splice(0).forEach((w) => w());
      }
    } catch { /* aborted */ }
  })();
  return {
    events,
    async waitFor(pred, timeoutMs = 60_000) {
      const end = Date.now() + timeoutMs;
      for (;;) {
        const hit = events.find(pred);
        if (hit) return hit;
        if (Date.now() > end) {
          throw new Error(
            `no matching event in ${
              JSON.stringify(events.map((e) => e.event + ":" + JSON.stringify(e.data)).slice(-10))
            }`,
          );
        }
        await new Promise<void>((res) => {
          const t = setTimeout(res, 200);
          waiters.push(() => {
            clearTimeout(t);
            res();
          });
        });
      }
    },
    async close() {
      ac.abort();
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
}
