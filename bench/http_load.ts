/**
 * An open-loop HTTP/1.1 GET generator for the load scenario, in the manner of wrk: requests
 * leave on schedule (whether or not earlier ones answered) over keep-alive connections,
 * each request one preformatted write, each answer parsed only as far as its status line
 * and length. On a 2-core machine the load client shares the cores the migration runs on,
 * so it must cost as little as it can: `fetch` spends ~0.15 ms of CPU per request here,
 * this client a small fraction of that, and the scenario then measures Ferry's cost of
 * serving the load, not the client's cost of making it.
 *
 * @module
 */

/** What a finished load run reports. */
export interface HttpLoadResult {
  sent: number;
  /** Connection failures, malformed answers and non-200 answers. */
  errors: number;
  /** Requests per second actually sent. */
  achievedRate: number;
  /** Request written → answer read, ms, for every 200 answer. */
  latencies: number[];
  /** `performance.now()` of every request as it was due and left, in order. */
  sentAt: number[];
}

const HEAD_END = new Uint8Array([13, 10, 13, 10]);
const decoder = new TextDecoder();

/** Index of `\r\n\r\n` (the end of an HTTP head) in `buf[0, len)` from `from`, or -1. */
export function headEnd(buf: Uint8Array, len: number, from: number): number {
  for (let i = Math.max(0, from); i + 3 < len; i++) {
    if (
      buf[i] === HEAD_END[0] && buf[i + 1] === HEAD_END[1] && buf[i + 2] === HEAD_END[2] &&
      buf[i + 3] === HEAD_END[3]
    ) return i;
  }
  return -1;
}

/** One keep-alive connection: one request at a time. */
class Connection {
  readonly #conn: Deno.TcpConn;
  readonly #request: Uint8Array;
  #buf = new Uint8Array(64 * 1024);
  #len = 0;

  constructor(conn: Deno.TcpConn, request: Uint8Array) {
    this.#conn = conn;
    this.#request = request;
    conn.setNoDelay(true);
  }

  /** Sends the request and reads one whole answer; resolves with its status code. */
  async get(): Promise<number> {
    let off = 0;
    while (off < this.#request.length) off += await this.#conn.write(this.#request.subarray(off));
    let scanned = 0;
    for (;;) {
      const end = headEnd(this.#buf, this.#len, scanned - 3);
      if (end >= 0) {
        const head = decoder.decode(this.#buf.subarray(0, end));
        const status = Number(head.slice(9, 12));
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(head);
        if (!m || !(status >= 100)) throw new Error("answer without status or content-length");
        const total = end + 4 + Number(m[1]);
        await this.#fill(total);
        this.#buf.copyWithin(0, total, this.#len);
        this.#len -= total;
        return status;
      }
      scanned = this.#len;
      await this.#fill(this.#len + 1);
    }
  }

  /** Reads until at least `want` bytes are buffered. */
  async #fill(want: number): Promise<void> {
    if (want > this.#buf.length) {
      const bigger = new Uint8Array(Math.max(want, this.#buf.length * 2));
      bigger.set(this.#buf.subarray(0, this.#len));
      this.#buf = bigger;
    }
    while (this.#len < want) {
      const n = await this.#conn.read(this.#buf.subarray(this.#len));
      if (n === null) throw new Error("connection closed");
      this.#len += n;
    }
  }

  close(): void {
    try {
      this.#conn.close();
    } catch { /* closed */ }
  }
}

/**
 * Sends `GET path` to `base` (`http://HOST:PORT`) at `rate` per second until the returned
 * function is called; at most `maxInflight` requests wait for answers at once (a request
 * due while that many are out is sent as soon as one answers). Connections are opened as
 * needed and kept alive.
 */
export function httpLoad(
  base: string,
  path: string,
  rate: number,
  maxInflight = 256,
): () => Promise<HttpLoadResult> {
  const url = new URL(base);
  const request = new TextEncoder().encode(
    `GET ${path} HTTP/1.1\r\nHost: ${url.host}\r\nAccept: application/json\r\n\r\n`,
  );
  const idle: Connection[] = [];
  const all: Connection[] = [];
  const latencies: number[] = [];
  const sentAt: number[] = [];
  let sent = 0;
  let errors = 0;
  let inflight = 0;
  let stopped = false;
  let wake = () => {};
  const pending = new Set<Promise<void>>();
  const t0 = performance.now();

  const one = async () => {
    inflight++;
    let c = idle.pop();
    try {
      if (!c) {
        const conn = await Deno.connect({ hostname: url.hostname, port: Number(url.port) });
        c = new Connection(conn, request);
        all.push(c);
      }
      const s = performance.now();
      const status = await c.get();
      if (status === 200) latencies.push(performance.now() - s);
      else errors++;
      idle.push(c);
    } catch {
      errors++;
      c?.close();
    } finally {
      inflight--;
    }
  };

  const loop = (async () => {
    while (!stopped) {
      const now = performance.now();
      const due = Math.floor((now - t0) * rate / 1000);
      while (sent < due && inflight < maxInflight) {
        sent++;
        sentAt.push(performance.now());
        const p = one().finally(() => pending.delete(p));
        pending.add(p);
      }
      const next = t0 + (sent + 1) * 1000 / rate;
      await new Promise<void>((r) => {
        const timer = setTimeout(r, Math.max(0, next - performance.now()));
        wake = () => (clearTimeout(timer), r());
      });
    }
    await Promise.all(pending);
  })();

  return async () => {
    stopped = true;
    wake();
    await loop;
    for (const c of all) c.close();
    const seconds = (performance.now() - t0) / 1000;
    return { sent, errors, achievedRate: sent / seconds, latencies, sentAt };
  };
}
