/**
 * etcd's own JSON gateway (grpc-gateway, `/v3/...`, served by etcd ≥ 3.4 on its client URL)
 * with plain fetch: what COLO's arbiter needs of it — a lease (grant, keep-alive, revoke) and
 * one transaction that creates a key bound to a lease unless the key exists. Keys and values
 * travel base64-encoded, 64-bit ids as decimal strings, as the gateway writes them. Every
 * request has a deadline ({@link EtcdGateway.timeoutMs}): an etcd that does not answer is an
 * {@link EtcdError} saying so, never a hang. Nothing here decides anything: colo_arbiter.ts
 * does.
 *
 * @module
 */

/** A request to etcd failed: unreachable, no answer in time, or etcd's own error. */
export class EtcdError extends Error {
  /** etcd's gRPC status code, when etcd answered with an error (5: not found). */
  readonly code: number | null;
  constructor(message: string, code: number | null = null) {
    super(message);
    this.name = "EtcdError";
    this.code = code;
  }
}

/** etcd's gRPC code for "not found" (a lease that expired or was revoked). */
export const ETCD_NOT_FOUND = 5;

/** What the arbiter asks of etcd (the gateway, or a fake in unit tests). */
export interface ArbiterGateway {
  /** A new lease of `ttlS` seconds: its id and the TTL etcd granted. */
  grant(ttlS: number): Promise<{ id: string; ttlS: number }>;
  /** Renews lease `id`: the TTL it has now (0: the lease is gone — expired or revoked). */
  keepalive(id: string): Promise<number>;
  /**
   * Creates `key` = `value` bound to lease `id` unless `key` exists. `won`: created, or it
   * already was this lease's; else `holder` is the lease that holds it ("0": none).
   */
  claim(key: string, value: string, id: string): Promise<{ won: boolean; holder: string }>;
  /** Revokes lease `id` (its keys go with it); a lease already gone is fine. */
  revoke(id: string): Promise<void>;
}

/** The transaction of {@link ArbiterGateway.claim}, as the gateway's JSON. */
export function claimTxn(key: string, value: string, id: string): unknown {
  const k = b64(key);
  return {
    compare: [{ key: k, target: "CREATE", result: "EQUAL", create_revision: "0" }],
    success: [{ request_put: { key: k, value: b64(value), lease: id } }],
    failure: [{ request_range: { key: k } }],
  };
}

/**
 * What a claim's answer says: `succeeded` → won; else the key's lease (from the failure's
 * range) — this lease's own is a win too (a claim repeated after an answer that was lost).
 */
export function claimResult(body: unknown, id: string): { won: boolean; holder: string } {
  const b = body as {
    succeeded?: boolean;
    responses?: { response_range?: { kvs?: { lease?: string }[] } }[];
  };
  if (b.succeeded === true) return { won: true, holder: id };
  const kv = b.responses?.[0]?.response_range?.kvs?.[0];
  const holder = kv?.lease ?? "0";
  return { won: holder === id, holder };
}

/** The TTL (s) a keep-alive's answer gives lease `id`: 0 when etcd no longer has it. */
export function keepaliveTtl(body: unknown, id: string): number {
  const r = (body as { result?: { ID?: string; TTL?: string } }).result;
  if (!r || r.ID !== id) throw new EtcdError(`etcd: keep-alive answered ${JSON.stringify(body)}`);
  return Number(r.TTL ?? 0);
}

function b64(s: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(s)));
}

/** etcd's JSON gateway at `url` (see the module doc). */
export class EtcdGateway implements ArbiterGateway {
  readonly #url: string;
  readonly #fetch: typeof fetch;
  /** Every request's deadline (ms). */
  readonly timeoutMs: number;

  /** The gateway at `url` (http://HOST:PORT); `fetcher` for tests. */
  constructor(url: string, timeoutMs: number, fetcher: typeof fetch = fetch) {
    this.#url = url.replace(/\/+$/, "");
    this.timeoutMs = timeoutMs;
    this.#fetch = fetcher;
  }

  async grant(ttlS: number): Promise<{ id: string; ttlS: number }> {
    const b = await this.#post("lease grant", "/v3/lease/grant", { TTL: ttlS }) as {
      ID?: string;
      TTL?: string;
    };
    if (!b.ID || !b.TTL) throw new EtcdError(`etcd ${this.#url}: lease grant: no lease`);
    return { id: b.ID, ttlS: Number(b.TTL) };
  }

  async keepalive(id: string): Promise<number> {
    return keepaliveTtl(
      await this.#post("lease keep-alive", "/v3/lease/keepalive", { ID: id }),
      id,
    );
  }

  async claim(key: string, value: string, id: string): Promise<{ won: boolean; holder: string }> {
    return claimResult(await this.#post("claim", "/v3/kv/txn", claimTxn(key, value, id)), id);
  }

  async revoke(id: string): Promise<void> {
    try {
      await this.#post("lease revoke", "/v3/lease/revoke", { ID: id });
    } catch (e) {
      if (!(e instanceof EtcdError && e.code === ETCD_NOT_FOUND)) throw e;
    }
  }

  /** POSTs `body` to `path`: the answer's JSON, or an EtcdError (bounded by timeoutMs). */
  async #post(what: string, path: string, body: unknown): Promise<unknown> {
    const where = `etcd ${this.#url}: ${what}`;
    const signal = AbortSignal.timeout(this.timeoutMs);
    let text: string;
    let status: number;
    try {
      const res = await this.#fetch(this.#url + path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal,
      });
      status = res.status;
      text = await res.text();
    } catch (e) {
      if (signal.aborted) throw new EtcdError(`${where}: no answer within ${this.timeoutMs} ms`);
      throw new EtcdError(`${where}: ${(e as Error).message}`);
    }
    let json: { error?: string; message?: string; code?: number };
    try {
      json = JSON.parse(text);
    } catch {
      throw new EtcdError(`${where}: HTTP ${status}, not JSON: ${text.slice(0, 120)}`);
    }
    if (status !== 200 || json.error !== undefined) {
      const code = typeof json.code === "number" ? json.code : null;
      throw new EtcdError(`${where}: ${json.message ?? json.error ?? `HTTP ${status}`}`, code);
    }
    return json;
  }
}
