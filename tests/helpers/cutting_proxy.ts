/**
 * A TCP proxy for fault tests: listens on 127.0.0.1 (a free port) and forwards every
 * connection to a target, counting bytes each way. It can
 *
 * - `cut()`: close both sides of every current connection at once (`conn.close()`), as a
 *   network failure or a killed peer would;
 * - `pause()` / `resume()`: stop forwarding without closing, in both directions (or one:
 *   `pause("down")` holds what the target sends back, e.g. a destination's return path); the
 *   proxy stops reading too, so the sender's writes block once the socket buffers fill, like
 *   a peer that stopped reading;
 * - cut a connection after it has forwarded N bytes in a direction (`cutAfter`): exactly N
 *   bytes reach the far side, then both sides are closed;
 * - once, at an exact count of bytes forwarded client→target over all connections
 *   (`cutAt(n)`, `pauseAt(n)`): cut or pause at that byte by itself, so that where a fault
 *   lands does not depend on how soon a test gets to run;
 * - pass an end of stream or a reset on late (`endDelayMs`), as a long path would: the far
 *   side learns of it that much later than the near side caused it.
 *
 * End of stream is passed on as a half-close, so a proxied stream ends as a direct one would.
 *
 * @module
 */

/** Where the proxy forwards to, and when it cuts on its own. */
export interface CuttingProxyOptions {
  /** Target host (loopback). */
  hostname: string;
  /** Target port. */
  port: number;
  /** Cut each connection once it has forwarded this many bytes client→target (`up`) or back. */
  cutAfter?: { up?: number; down?: number };
  /** Milliseconds by which an end of stream or a reset is passed on late. */
  endDelayMs?: number;
}

interface Link {
  client: Deno.TcpConn;
  target: Deno.TcpConn;
  closed: boolean;
  /** Resolves when the link is closed (wakes pumps held by pause()). */
  closedSignal: PromiseWithResolvers<void>;
  done: Promise<void>;
}

const BUFFER_SIZE = 64 * 1024;

/** A TCP proxy that can cut or stall its connections. */
export class CuttingProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  readonly #listener: Deno.TcpListener;
  readonly #options: CuttingProxyOptions;
  readonly #links = new Set<Link>();
  readonly #acceptLoop: Promise<void>;
  readonly #gates: Record<"up" | "down", PromiseWithResolvers<void> | null> = {
    up: null,
    down: null,
  };
  #bytesUp = 0;
  #bytesDown = 0;
  /** A one-shot fault armed at a count of bytes up (cutAt, pauseAt). */
  #armed: { at: number; fault: "cut" | "pause"; reached: PromiseWithResolvers<void> } | null = null;
  #connections = 0;
  #cuts = 0;
  #closed = false;

  private constructor(listener: Deno.TcpListener, options: CuttingProxyOptions) {
    this.#listener = listener;
    this.#options = options;
    this.port = (listener.addr as Deno.NetAddr).port;
    this.#acceptLoop = this.#acceptAll();
  }

  /** Starts a proxy to `options.hostname:options.port` on 127.0.0.1 and a free port. */
  static start(options: CuttingProxyOptions): Promise<CuttingProxy> {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0, transport: "tcp" });
    return Promise.resolve(new CuttingProxy(listener, options));
  }

  /** The proxy's address as a migration URI. */
  get uri(): string {
    return `tcp:127.0.0.1:${this.port}`;
  }

  /** Bytes forwarded client→target, over every connection so far. */
  get bytesUp(): number {
    return this.#bytesUp;
  }

  /** Bytes forwarded target→client, over every connection so far. */
  get bytesDown(): number {
    return this.#bytesDown;
  }

  /** Connections accepted so far. */
  get connections(): number {
    return this.#connections;
  }

  /** Connections cut so far (by cut() or cutAfter). */
  get cuts(): number {
    return this.#cuts;
  }

  /** Whether forwarding is paused (in either direction). */
  get paused(): boolean {
    return this.#gates.up !== null || this.#gates.down !== null;
  }

  /** Abruptly closes both sides of every current connection. Later connections still work. */
  cut(): void {
    for (const link of this.#links) this.#cut(link);
  }

  /** Stops forwarding (and reading) in both directions, or in `dir`, without closing anything. */
  pause(dir?: "up" | "down"): void {
    for (const d of dir ? [dir] : ["up", "down"] as const) {
      this.#gates[d] ??= Promise.withResolvers<void>();
    }
  }

  /**
   * Cuts every connection once exactly `bytesUp` bytes have gone client→target in all (one
   * shot; later connections are left alone). Resolves when it happened.
   */
  cutAt(bytesUp: number): Promise<void> {
    return this.#arm(bytesUp, "cut");
  }

  /**
   * Pauses both directions once exactly `bytesUp` bytes have gone client→target in all (one
   * shot, as pause()). Resolves when it happened.
   */
  pauseAt(bytesUp: number): Promise<void> {
    return this.#arm(bytesUp, "pause");
  }

  #arm(at: number, fault: "cut" | "pause"): Promise<void> {
    if (at <= this.#bytesUp) throw new Error(`${at} bytes have already gone up`);
    this.#armed = { at, fault, reached: Promise.withResolvers<void>() };
    return this.#armed.reached.promise;
  }

  /** Fires the armed fault if the bytes up reached it. */
  #fire(): void {
    const armed = this.#armed;
    if (armed === null || this.#bytesUp < armed.at) return;
    this.#armed = null;
    if (armed.fault === "cut") this.cut();
    else this.pause();
    armed.reached.resolve();
  }

  /** Forwards again after pause() (in both directions, or in `dir`). */
  resume(dir?: "up" | "down"): void {
    for (const d of dir ? [dir] : ["up", "down"] as const) {
      this.#gates[d]?.resolve();
      this.#gates[d] = null;
    }
  }

  /** Stops listening, cuts every connection and waits for all forwarding to stop. */
  async close(): Promise<void> {
    if (!this.#closed) {
      this.#closed = true;
      try {
        this.#listener.close();
      } catch {
        // Already closed.
      }
    }
    this.resume();
    this.cut();
    await this.#acceptLoop;
    await Promise.all([...this.#links].map((link) => link.done));
  }

  async #acceptAll(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // listener closed
      }
      let target: Deno.TcpConn;
      try {
        target = await Deno.connect({ hostname: this.#options.hostname, port: this.#options.port });
      } catch {
        client.close();
        continue;
      }
      if (this.#closed) {
        client.close();
        target.close();
        return;
      }
      this.#connections++;
      client.setNoDelay(true);
      target.setNoDelay(true);
      const link: Link = {
        client,
        target,
        closed: false,
        closedSignal: Promise.withResolvers<void>(),
        done: Promise.resolve(),
      };
      this.#links.add(link);
      link.done = Promise.all([
        this.#pump(link, client, target, "up"),
        this.#pump(link, target, client, "down"),
      ]).then(() => {
        this.#close(link);
        this.#links.delete(link);
      });
    }
  }

  /** Forwards `from` → `to` until end of stream, an error, or a cut. */
  async #pump(link: Link, from: Deno.Conn, to: Deno.Conn, dir: "up" | "down"): Promise<void> {
    const limit = this.#options.cutAfter?.[dir] ?? Infinity;
    const buf = new Uint8Array(BUFFER_SIZE);
    let forwarded = 0;
    try {
      for (;;) {
        if (forwarded >= limit) return this.#cut(link);
        if (!await this.#open(link, dir)) return;
        const armedLeft = dir === "up" && this.#armed ? this.#armed.at - this.#bytesUp : Infinity;
        const want = Math.min(buf.length, limit - forwarded, armedLeft);
        const n = await from.read(want === buf.length ? buf : buf.subarray(0, want));
        if (n === null) {
          await this.#lateEnd();
          return await to.closeWrite();
        }
        if (!await this.#open(link, dir)) return;
        for (let off = 0; off < n;) off += await to.write(buf.subarray(off, n));
        forwarded += n;
        if (dir === "up") {
          this.#bytesUp += n;
          this.#fire();
        } else this.#bytesDown += n;
      }
    } catch {
      // A cut or a reset: close both sides so the other pump ends too.
      if (!link.closed) await this.#lateEnd();
      this.#close(link);
    }
  }

  /** Waits `endDelayMs` (a long path) before an end is passed on. */
  async #lateEnd(): Promise<void> {
    const ms = this.#options.endDelayMs ?? 0;
    if (ms > 0) await new Promise((r) => setTimeout(r, ms));
  }

  /** Waits while `dir` is paused; false once the link is closed. */
  async #open(link: Link, dir: "up" | "down"): Promise<boolean> {
    for (let gate = this.#gates[dir]; gate !== null && !link.closed; gate = this.#gates[dir]) {
      await Promise.race([gate.promise, link.closedSignal.promise]);
    }
    return !link.closed;
  }

  #cut(link: Link): void {
    if (link.closed) return;
    this.#cuts++;
    this.#close(link);
  }

  #close(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    link.closedSignal.resolve();
    for (const conn of [link.client, link.target]) {
      try {
        conn.close();
      } catch {
        // Already closed.
      }
    }
  }
}
