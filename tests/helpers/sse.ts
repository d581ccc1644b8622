/**
 * Test helper: a minimal Server-Sent Events client over fetch that records every event, and
 * the stream's framing (blocks, and the fields of each) for tests that read a body themselves.
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

/** One block of an event stream, its fields as written (`data` lines joined by `\n`). */
export interface SseBlock {
  comments: string[];
  id: string;
  event: string;
  /** null when the block has no data line (a comment-only block). */
  data: string | null;
}

/** Splits an event-stream body into its blocks (the text between blank lines). */
export function sseBlocks(body: ReadableStream<Uint8Array>): ReadableStream<string> {
  let buf = "";
  return body.pipeThrough(new TextDecoderStream()).pipeThrough(
    new TransformStream<string, string>({
      transform(chunk, out) {
        buf += chunk;
        let i;
        while ((i = buf.indexOf("\n\n")) >= 0) {
          out.enqueue(buf.slice(0, i));
          buf = buf.slice(i + 2);
        }
      },
    }),
  );
}

/** The fields of one block. */
export function parseBlock(block: string): SseBlock {
  const b: SseBlock = { comments: [], id: "", event: "message", data: null };
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) {
      b.comments.push(line.slice(1).trim());
      continue;
    }
    const colon = line.indexOf(":");
    const k = colon < 0 ? line : line.slice(0, colon);
    const v = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (k === "id") b.id = v;
    else if (k === "event") b.event = v;
    else if (k === "data") b.data = b.data === null ? v : `${b.data}\n${v}`;
  }
  return b;
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
  const reader = sseBlocks(r.body!).getReader();
  const pump = (async () => {
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        const b = parseBlock(value);
        if (b.data === null && !b.id) continue;
        events.push({ id: b.id, event: b.event, data: JSON.parse(b.data ?? '""') });
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
