/**
 * A lean SSE subscriber for the load scenario: one plain TCP connection, `GET /events` over
 * HTTP/1.1, the chunked body undone by hand, and of each event only its id (and, for
 * MIGRATION events, the status) kept. `fetch` with a TextDecoderStream spent ~40 µs of CPU
 * per event here; 200 of them on the same 2 cores as the migration measured the client
 * more than the agent.
 *
 * @module
 */
import { createParser } from "eventsource-parser";
import { headEnd } from "./http_load.ts";
import { wallNow } from "./measure.ts";

/** What one subscriber saw. */
export interface Follower {
  /** Every event id, in arrival order. */
  ids: number[];
  /** MIGRATION statuses per migration id, in arrival order. */
  statuses: Map<string, string[]>;
  /** True once the stream ended or failed by itself. */
  ended: boolean;
  /** Closes the connection (does not count as ended). */
  close(): Promise<void>;
  /**
   * Resolves with the first MIGRATION status matching `status` (one seen already counts) and the
   * wall-clock ms its event was read at; rejects after `timeoutMs` or once the stream ended.
   */
  waitStatus(status: RegExp, timeoutMs: number): Promise<{ status: string; at: number }>;
}

/** For whole ASCII pieces (chunk sizes, the response head): it keeps no state between calls. */
const decoder = new TextDecoder();

/** Undoes HTTP/1.1 chunked transfer coding, fed bytes as they come (exported for its test). */
export class Dechunker {
  #pending = new Uint8Array(0);
  /** Bytes of the current chunk still to come, or -1 while reading a size line. */
  #left = -1;

  /** Feeds bytes; returns the body bytes they complete (possibly none). */
  push(bytes: Uint8Array): Uint8Array[] {
    let buf = bytes;
    if (this.#pending.length) {
      buf = new Uint8Array(this.#pending.length + bytes.length);
      buf.set(this.#pending);
      buf.set(bytes, this.#pending.length);
      this.#pending = new Uint8Array(0);
    }
    const out: Uint8Array[] = [];
    let at = 0;
    while (at < buf.length) {
      if (this.#left < 0) {
        const nl = buf.indexOf(10, at);
        if (nl < 0) break;
        const size = parseInt(decoder.decode(buf.subarray(at, nl)).trim(), 16);
        if (!(size >= 0)) throw new Error("malformed chunk size");
        at = nl + 1;
        this.#left = size + 2; // the chunk's data, then CRLF
        if (size === 0) return out;
      } else {
        const take = Math.min(this.#left, buf.length - at);
        const dataLeft = Math.max(0, this.#left - 2);
        if (dataLeft > 0) out.push(buf.subarray(at, at + Math.min(take, dataLeft)));
        at += take;
        this.#left -= take;
        if (this.#left === 0) this.#left = -1;
      }
    }
    this.#pending = buf.slice(at);
    return out;
  }
}

/** Subscribes to `base`'s events; resolves once the stream is open (its first comment read). */
export async function follow(base: string): Promise<Follower> {
  const url = new URL(base);
  const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
  await conn.write(
    new TextEncoder().encode(
      `GET /events HTTP/1.1\r\nHost: ${url.host}\r\nAccept: text/event-stream\r\n\r\n`,
    ),
  );
  const waiters: { status: RegExp; found: (s: string) => void }[] = [];
  let endStream: (e: Error) => void = () => {};
  const ended = new Promise<never>((_, reject) => (endStream = reject));
  ended.catch(() => {}); // observed by waitStatus
  const f: Follower = {
    ids: [],
    statuses: new Map(),
    ended: false,
    close: async () => {},
    waitStatus: (status, timeoutMs) => {
      const seen = [...f.statuses.values()].flat().find((s) => status.test(s));
      if (seen !== undefined) return Promise.resolve({ status: seen, at: wallNow() });
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no MIGRATION event with status ${status} within ${timeoutMs} ms`));
        }, timeoutMs);
        const waiter = {
          status,
          found: (s: string) => {
            clearTimeout(timer);
            resolve({ status: s, at: wallNow() });
          },
        };
        waiters.push(waiter);
        ended.catch((e) => {
          clearTimeout(timer);
          reject(e);
        });
      });
    },
  };
  const chunk = new Uint8Array(64 * 1024);
  const dechunk = new Dechunker();
  let head = new Uint8Array(0);
  let inBody = false;
  let opened: () => void = () => {};
  const open = new Promise<void>((resolve) => (opened = resolve));
  let closing = false;

  const parser = createParser({
    onComment: () => opened(),
    onEvent: (e) => {
      if (e.id === undefined) return;
      f.ids.push(Number(e.id));
      if (e.event === "MIGRATION") {
        const data = JSON.parse(e.data);
        const list = f.statuses.get(data.id) ?? [];
        list.push(data.status);
        f.statuses.set(data.id, list);
        for (let i = waiters.length - 1; i >= 0; i--) {
          if (waiters[i].status.test(data.status)) waiters.splice(i, 1)[0].found(data.status);
        }
      }
    },
  });
  // This stream's own decoder: a character split between two reads waits here for its rest
  // (one shared by every follower mixed their pending bytes, and the ASCII decodes flushed them).
  const body = new TextDecoder();
  const take = (bytes: Uint8Array) => {
    for (const part of dechunk.push(bytes)) parser.feed(body.decode(part, { stream: true }));
  };

  const pump = (async () => {
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) break;
        let bytes = chunk.subarray(0, n);
        if (!inBody) {
          const joined = new Uint8Array(head.length + n);
          joined.set(head);
          joined.set(bytes, head.length);
          head = joined;
          const end = headEnd(head, head.length, 0);
          if (end < 0) continue;
          const text = decoder.decode(head.subarray(0, end));
          if (!text.startsWith("HTTP/1.1 200")) throw new Error(text.split("\r\n")[0]);
          if (!/\r\ntransfer-encoding:\s*chunked/i.test(text)) {
            throw new Error("expected a chunked event stream");
          }
          bytes = head.subarray(end + 4);
          inBody = true;
        }
        take(bytes);
      }
    } catch { /* closed or failed */ }
    if (!closing) f.ended = true;
    endStream(new Error(closing ? "the event stream was closed" : "the event stream ended"));
    opened();
  })();

  f.close = async () => {
    closing = true;
    try {
      conn.close();
    } catch { /* closed */ }
    await pump;
  };
  await open;
  if (f.ended) throw new Error("the event stream did not open");
  return f;
}
