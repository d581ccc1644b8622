/**
 * A Server-Sent Events client over fetch: unlike EventSource it can send
 * `Authorization: Bearer …` and it hands over events of any name (MIGRATION,
 * MIGRATION_PASS, progress, and whatever the agent adds later). It reconnects by itself
 * with `Last-Event-ID`, as EventSource would.
 *
 * @module
 */

/**
 * @typedef {object} SseMessage
 * @property {string} id the `id:` in force when it was dispatched ("" when none yet)
 * @property {string} event the `event:` name ("message" when none)
 * @property {string} data the `data:` lines joined with "\n"
 */

/** Incremental parser for the text/event-stream format (WHATWG HTML § 9.2.6). */
export class SseParser {
  #buffer = "";
  #data = /** @type {string[]} */ ([]);
  #event = "";
  #lastId = "";
  #sawCr = false;

  /** The last event id seen (what a reconnect sends as Last-Event-ID). */
  get lastEventId() {
    return this.#lastId;
  }

  /**
   * Feeds a chunk of decoded text; returns the events it completed.
   * @param {string} chunk
   * @returns {SseMessage[]}
   */
  push(chunk) {
    /** @type {SseMessage[]} */
    const out = [];
    if (chunk === "") return out;
    let text = chunk;
    // A CR at the end of the previous chunk already ended a line; drop its LF half.
    if (this.#sawCr && text.startsWith("\n")) text = text.slice(1);
    this.#sawCr = text.endsWith("\r");
    this.#buffer += text;
    const lines = this.#buffer.split(/\r\n|\r|\n/);
    this.#buffer = lines.pop() ?? "";
    for (const line of lines) this.#line(line, out);
    return out;
  }

  /**
   * @param {string} line
   * @param {SseMessage[]} out
   */
  #line(line, out) {
    if (line === "") {
      if (this.#data.length > 0) {
        out.push({
          id: this.#lastId,
          event: this.#event || "message",
          data: this.#data.join("\n"),
        });
      }
      this.#data = [];
      this.#event = "";
      return;
    }
    if (line.startsWith(":")) return;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "data") this.#data.push(value);
    else if (field === "event") this.#event = value;
    else if (field === "id" && !value.includes("\0")) this.#lastId = value;
  }
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
        const parser = new SseParser();
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          for (const message of parser.push(value)) {
            delay = 500; // a stream that delivers is healthy: the next retry comes soon
            lastId = message.id || lastId;
            options.onEvent(message);
          }
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
