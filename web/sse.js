/**
 * A Server-Sent Events client over fetch: unlike EventSource it can send
 * `Authorization: Bearer …` and it hands over events of any name (MIGRATION,
 * MIGRATION_PASS, progress, and whatever the agent adds later). It reconnects by itself
 * with `Last-Event-ID`, as EventSource would.
 *
 * @module
 */
import { createParser } from "eventsource-parser";

/**
 * @typedef {object} SseMessage
 * @property {string} id the `id:` in force when it was dispatched ("" when none yet)
 * @property {string} event the `event:` name ("message" when none)
 * @property {string} data the `data:` lines joined with "\n"
 */

/**
 * @typedef {object} SseDecoder
 * @property {(chunk: string) => void} feed decoded text, in any chunking
 * @property {string} lastEventId the last `id:` seen (what a reconnect sends)
 */

/**
 * Feeds text/event-stream text to `npm:eventsource-parser` (the one SSE parser the
 * dashboard, `ctl`, the bench and the tests share) and hands each event on.
 * @param {(message: SseMessage) => void} onMessage
 * @returns {SseDecoder}
 */
export function sseDecoder(onMessage) {
  let lastEventId = "";
  const parser = createParser({
    onEvent(e) {
      if (e.id !== undefined) lastEventId = e.id;
      onMessage({ id: lastEventId, event: e.event || "message", data: e.data });
    },
  });
  return {
    feed: (chunk) => parser.feed(chunk),
    get lastEventId() {
      return lastEventId;
    },
  };
}

/**
 * @typedef {object} FollowOptions
 * @property {() => string | null} token the bearer token to send, if any
 * @property {(message: SseMessage) => void} onEvent called for every event, in order
 * @property {(state: "connecting" | "live" | "retrying" | "unauthorized") => void} onState
 * @property {string} [lastEventId] where to start ("0" replays the agent's backlog)
 */

/**
 * Follows `url` until the returned function is called; reconnects after a drop with
 * the last event id, backing off from 0.5 s to 5 s. A 401 stops it (`unauthorized`).
 * @param {string} url
 * @param {FollowOptions} options
 * @returns {() => void} stop
 */
export function followEvents(url, options) {
  const abort = new AbortController();
  let lastId = options.lastEventId ?? "";
  let delay = 500;
  const run = async () => {
    while (!abort.signal.aborted) {
      options.onState("connecting");
      try {
        /** @type {Record<string, string>} */
        const headers = { accept: "text/event-stream" };
        const token = options.token();
        if (token) headers.authorization = `Bearer ${token}`;
        if (lastId !== "") headers["last-event-id"] = lastId;
        const response = await fetch(url, { headers, signal: abort.signal, cache: "no-store" });
        if (response.status === 401) {
          await response.body?.cancel();
          options.onState("unauthorized");
          return;
        }
        if (!response.ok || !response.body) throw new Error(`HTTP ${response.status}`);
        options.onState("live");
        const decoder = sseDecoder((message) => {
          delay = 500; // a stream that delivers is healthy: the next retry comes soon
          lastId = message.id || lastId;
          options.onEvent(message);
        });
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          decoder.feed(value);
        }
      } catch (_error) {
        if (abort.signal.aborted) return;
      }
      options.onState("retrying");
      await new Promise((resolve) => setTimeout(resolve, delay));
      delay = Math.min(delay * 2, 5000);
    }
  };
  void run();
  return () => abort.abort();
}
