/**
 * etcd's JSON gateway in memory, as a `fetch` for adapters/etcd/gateway.ts: leases with a TTL
 * on a clock the test moves (an expired lease takes its keys with it), the one transaction
 * shape the arbiter sends (create the key unless it exists, else read it), and the answers etcd
 * 3.4 gives (ids as decimal strings, base64 keys and values, `{error, code, message}` errors,
 * a keep-alive of a lease it no longer has answered without a TTL). `mode` makes it unreachable
 * ("down") or silent until the request's signal aborts ("hang").
 *
 * @module
 */

interface Kv {
  value: string;
  lease: string;
  createRevision: number;
}

/** The fake (see the module doc). */
export class FakeEtcd {
  /** The clock (ms) leases expire on. */
  now = 0;
  mode: "up" | "down" | "hang" = "up";
  readonly leases = new Map<string, { ttlS: number; expires: number }>();
  readonly keys = new Map<string, Kv>();
  /** Every request's path, in order. */
  readonly calls: string[] = [];
  #nextId = 7587870000000000001n;
  #revision = 1;

  /** The fake as a fetch. */
  readonly fetch: typeof fetch = (input, init) => this.#fetch(String(input), init);

  /** The key's value, decoded (undefined: absent). */
  value(key: string): string | undefined {
    this.#expire();
    const kv = this.keys.get(btoa(key));
    return kv === undefined ? undefined : atob(kv.value);
  }

  #expire(): void {
    for (const [id, l] of this.leases) {
      if (l.expires > this.now) continue;
      this.leases.delete(id);
      for (const [k, kv] of this.keys) if (kv.lease === id) this.keys.delete(k);
    }
  }

  #fetch(url: string, init?: RequestInit): Promise<Response> {
    const path = new URL(url).pathname;
    this.calls.push(path);
    if (this.mode === "down") return Promise.reject(new TypeError("connection refused"));
    if (this.mode === "hang") {
      return new Promise((_, reject) => {
        init?.signal?.addEventListener("abort", () => reject(init.signal!.reason));
      });
    }
    this.#expire();
    const body = JSON.parse(String(init?.body ?? "{}"));
    return Promise.resolve(this.#answer(path, body));
  }

  #answer(path: string, b: Record<string, unknown>): Response {
    const header = { cluster_id: "1", member_id: "2", revision: String(this.#revision) };
    if (path === "/v3/lease/grant") {
      const id = String(this.#nextId++);
      const ttlS = Number(b.TTL);
      this.leases.set(id, { ttlS, expires: this.now + ttlS * 1000 });
      return json({ header, ID: id, TTL: String(ttlS) });
    }
    if (path === "/v3/lease/keepalive") {
      const id = String(b.ID);
      const l = this.leases.get(id);
      if (!l) return json({ result: { header, ID: id } });
      l.expires = this.now + l.ttlS * 1000;
      return json({ result: { header, ID: id, TTL: String(l.ttlS) } });
    }
    if (path === "/v3/lease/revoke") {
      const id = String(b.ID);
      if (!this.leases.has(id)) return notFound();
      this.leases.get(id)!.expires = -1;
      this.#expire();
      return json({ header });
    }
    if (path === "/v3/kv/txn") return this.#txn(b, header);
    return json({ error: "Not Found", code: 5, message: "Not Found" }, 404);
  }

  /** create_revision(key) == 0 ? put(key, lease) : range(key) — the arbiter's only shape. */
  #txn(b: Record<string, unknown>, header: unknown): Response {
    const cmp = (b.compare as { key: string; target: string; create_revision: string }[])[0];
    const put = (b.success as { request_put: { key: string; value: string; lease: string } }[])[0]
      .request_put;
    if (cmp.target !== "CREATE" || cmp.create_revision !== "0" || put.key !== cmp.key) {
      throw new Error(`fake etcd: a transaction it does not know: ${JSON.stringify(b)}`);
    }
    const kv = this.keys.get(cmp.key);
    if (kv === undefined) {
      if (!this.leases.has(put.lease)) return notFound();
      this.#revision++;
      this.keys.set(cmp.key, {
        value: put.value,
        lease: put.lease,
        createRevision: this.#revision,
      });
      return json({ header, succeeded: true, responses: [{ response_put: { header } }] });
    }
    const kvs = [{
      key: cmp.key,
      create_revision: String(kv.createRevision),
      value: kv.value,
      lease: kv.lease,
    }];
    return json({ header, responses: [{ response_range: { header, kvs, count: "1" } }] });
  }
}

function json(body: unknown, status = 200): Response {
  return new Response(JSON.stringify(body), {
    status,
    headers: { "content-type": "application/json" },
  });
}

function notFound(): Response {
  const message = "etcdserver: requested lease not found";
  return json({ error: message, code: 5, message }, 404);
}
