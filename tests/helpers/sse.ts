/**
 * Test helper: a minimal Server-Sent Events client over fetch that records every event.
 *
 * @module
 */

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

/** Subscribes to `${base}/events`, optionally from `lastEventId`. */
export async function recordEvents(base: string, lastEventId?: string): Promise<SseRecorder> {
  const ac = new AbortController();
  const r = await fetch(`${base}/events`, {
    signal: ac.signal,
    headers: lastEventId ? { "last-event-id": lastEventId } : {},
  });
  const events: SseEvent[] = [];
  const waiters: (() => void)[] = [];
  const reader = r.body!.pipeThrough(new TextDecoderStream()).getReader();
  const pump = (async () => {
    let buf = "";
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          const e: SseEvent = { id: "", event: "message", data: "" };
          let data = "";
          for (const line of block.split("\n")) {
            if (line.startsWith(":")) continue;
            const [k, ...rest] = line.split(":");
            const v = rest.join(":").replace(/^ /, "");
            if (k === "id") e.id = v;
            else if (k === "event") e.event = v;
            else if (k === "data") data += (data ? "\n" : "") + v;
          }
          if (!data && !e.id) continue;
          e.data = JSON.parse(data);
          events.push(e);
          waiters.splice(0).forEach((w) => w());
        }
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
