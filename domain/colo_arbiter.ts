/**
 * COLO's arbiter (`--colo-arbiter etcd:URL`): which side of a pair that lost each other runs
 * the guest on. Without one, a side that merely lost the link holds and waits for
 * `lost-heartbeat`, and one that saw its peer's connection end runs on (colo_link.ts). With
 * one, both sides hold a lease in etcd while in COLO (granted as COLO begins, renewed every
 * third of its TTL), and a side that lost its peer — silent or ended alike, or a primary
 * that failed in COLO (it tells its secondary, which stops) — holds and claims one key: a transaction that creates it bound to its lease unless it exists. The
 * decision table:
 *
 * | what happens                              | verdict | the side                          |
 * |-------------------------------------------|---------|-----------------------------------|
 * | the claim created the key (or it was ours) | won     | runs on alone, releases output    |
 * | the key is another lease's                 | lost    | stops (fenced), never runs on     |
 * | etcd unreachable / no answer in time       | —       | holds, claims again every 500 ms  |
 * | its lease lapsed (no renewal within TTL)   | lost    | fenced at once, in COLO or after   |
 * |                                            |         | a win (its guest stops)           |
 *
 * A lease lapses on this side's own clock at the send time of the last renewal etcd accepted
 * plus the TTL etcd gave, so a side never believes in a lease etcd has already dropped (and
 * with it the key). A side that lapsed in COLO leaves it without a word, so its peer sees the
 * connection end and claims. The winner keeps its lease (and so the key) while the agent
 * lives; every other way out of COLO revokes this side's lease. `lost-heartbeat` stays the
 * operator's override and does not ask the arbiter.
 *
 * @module
 */
import {
  type ArbiterGateway,
  ETCD_NOT_FOUND,
  EtcdError,
  EtcdGateway,
} from "../adapters/etcd/gateway.ts";
import type { GuestOutput } from "../adapters/memory/guest_output.ts";

/** `--colo-arbiter etcd:URL[,key=KEY][,ttl=SECONDS]`. */
export interface ArbiterSpec {
  /** etcd's client URL (http or https). */
  url: string;
  /** The key the two sides of a pair claim (the same on both; one per pair). */
  key: string;
  /** The lease's TTL (s). */
  ttlS: number;
}

/** The key a pair claims unless `key=` says otherwise. */
export const DEFAULT_ARBITER_KEY = "ferry/colo";
/** The lease TTL (s) unless `ttl=` says otherwise. */
export const DEFAULT_ARBITER_TTL_S = 5;
/** How often a side that could not reach etcd claims again (ms). */
export const CLAIM_RETRY_MS = 500;

/** Parses `--colo-arbiter` (throws with a message for the user). */
export function parseArbiter(text: string): ArbiterSpec {
  const m = /^etcd:(https?:\/\/[^,\s]+)((?:,[^,]*)*)$/.exec(text);
  if (!m) throw new Error(`--colo-arbiter expects etcd:http://HOST:PORT[,key=KEY][,ttl=SECONDS]`);
  const spec: ArbiterSpec = { url: m[1], key: DEFAULT_ARBITER_KEY, ttlS: DEFAULT_ARBITER_TTL_S };
  try {
    new URL(m[1]);
  } catch {
    throw new Error(`--colo-arbiter: '${m[1]}' is not a URL`);
  }
  for (const part of m[2].split(",").slice(1)) {
    const kv = /^(key|ttl)=(.+)$/.exec(part);
    if (!kv) throw new Error(`--colo-arbiter: unknown part '${part}' (key=KEY, ttl=SECONDS)`);
    if (kv[1] === "key") spec.key = kv[2];
    else if (/^\d+$/.test(kv[2]) && Number(kv[2]) >= 2 && Number(kv[2]) <= 3600) {
      spec.ttlS = Number(kv[2]);
    } else throw new Error(`--colo-arbiter: ttl expects seconds in 2..3600, got '${kv[2]}'`);
  }
  return spec;
}

/** Where the arbiter stands (see the module doc). */
export type ArbiterState =
  /** Not in COLO, no key. */
  | "idle"
  /** In COLO (with a lease, or still asking for one: `error` says why not). */
  | "leased"
  /** The peer is lost: claiming the key. */
  | "claiming"
  /** This side holds the key: it runs on. */
  | "won"
  /** The peer holds the key: this side stopped. */
  | "lost"
  /** This side's lease lapsed: it stopped. */
  | "fenced";

/** `GET /colo`'s `x-arbiter`. */
export interface ArbiterStatus {
  state: ArbiterState;
  key: string;
  /** The lease this side holds (etcd's id), or null. */
  lease: string | null;
  /** The last error talking to etcd since the state last changed, or null. */
  error: string | null;
}

/** What a verdict does to the agent. */
export interface ArbiterHooks {
  /** To the side in COLO: it runs on alone (won) or stops (lost). */
  verdict(v: "won" | "lost"): void;
  /** The lease lapsed after a win, out of COLO: stop the guest and its output. */
  fence(): void;
}

/** One agent's arbiter (see the module doc). */
export class ColoArbiter {
  readonly #spec: ArbiterSpec;
  readonly #gw: ArbiterGateway;
  readonly #hooks: ArbiterHooks;
  readonly #now: () => number;
  readonly #value: string;
  #state: ArbiterState = "idle";
  #lease: string | null = null;
  /** When the lease lapses, on this side's clock (ms). */
  #deadline = 0;
  #error: string | null = null;
  /** A new COLO session makes every answer of an older one moot. */
  #session = 0;
  #renewTimer: ReturnType<typeof setTimeout> | undefined;
  #lapseTimer: ReturnType<typeof setTimeout> | undefined;
  /** A claim loop runs (one at a time: the peer may come back and go again meanwhile). */
  #claiming = false;

  /** The arbiter of `spec` through `gateway`; `who` goes in the key's value. */
  constructor(
    spec: ArbiterSpec,
    gateway: ArbiterGateway,
    hooks: ArbiterHooks,
    who = "ferry",
    now: () => number = () => performance.now(),
  ) {
    this.#spec = spec;
    this.#gw = gateway;
    this.#hooks = hooks;
    this.#value = who;
    this.#now = now;
  }

  /** For `GET /colo`. */
  status(): ArbiterStatus {
    return { state: this.#state, key: this.#spec.key, lease: this.#lease, error: this.#error };
  }

  // --- lease bookkeeping (driven by the timers below, or by unit tests) -------------------

  /** Asks for a new lease (dropping the old one); false when etcd did not give one. */
  async acquire(): Promise<boolean> {
    const session = this.#session;
    const sent = this.#now();
    try {
      const { id, ttlS } = await this.#gw.grant(this.#spec.ttlS);
      if (session !== this.#session) return false;
      this.#lease = id;
      this.#deadline = sent + ttlS * 1000;
      this.#error = null;
      this.#armLapse();
      return true;
    } catch (e) {
      if (session === this.#session) this.#error = message(e);
      return false;
    }
  }

  /** One renewal of the lease (a lease etcd no longer has lapses here at once). */
  async renew(): Promise<void> {
    const id = this.#lease;
    if (!id || !this.#holdsLease()) return;
    const session = this.#session;
    const sent = this.#now();
    try {
      const ttlS = await this.#gw.keepalive(id);
      if (session !== this.#session || id !== this.#lease) return;
      if (ttlS <= 0) return this.#lapse(`etcd dropped lease ${id}`);
      this.#deadline = sent + ttlS * 1000;
      this.#error = null;
      this.#armLapse();
    } catch (e) {
      if (session === this.#session) this.#error = message(e);
    }
  }

  /** Applies the lapse rule now: true when the lease has lapsed (this side is fenced). */
  checkLapse(): boolean {
    if (this.#lease && this.#holdsLease() && this.#now() >= this.#deadline) {
      this.#lapse(`lease ${this.#lease} lapsed: not renewed within ${this.#spec.ttlS} s`);
    }
    return this.#state === "fenced";
  }

  /** One claim of the key: the verdict, or null (etcd unreachable: try again). */
  async claim(): Promise<"won" | "lost" | null> {
    if (this.checkLapse()) return "lost";
    if (!this.#lease && !await this.acquire()) return null;
    const session = this.#session;
    try {
      const r = await this.#gw.claim(this.#spec.key, this.#value, this.#lease!);
      if (session !== this.#session) return null;
      return r.won ? "won" : "lost";
    } catch (e) {
      if (session !== this.#session) return null;
      if (e instanceof EtcdError && e.code === ETCD_NOT_FOUND) {
        this.#lapse(`etcd no longer has lease ${this.#lease}`);
        return "lost";
      }
      this.#error = message(e);
      return null;
    }
  }

  // --- the COLO session -------------------------------------------------------------------

  /** COLO began: a new session with a new lease (renewed until the session ends). */
  enter(): void {
    const old = this.#lease;
    this.#stopTimers();
    this.#session++;
    this.#state = "leased";
    this.#lease = null;
    this.#error = null;
    if (old) void this.#gw.revoke(old).catch(() => {});
    const session = this.#session;
    void this.acquire().finally(() => {
      if (session === this.#session) this.#scheduleRenew();
    });
  }

  /** The side in COLO lost its peer (it holds): claim until a verdict, then deliver it. */
  async peerLost(): Promise<void> {
    if (this.#state !== "leased") return;
    this.#state = "claiming";
    if (this.#claiming) return; // the loop that runs goes on
    this.#claiming = true;
    try {
      await this.#claimUntilVerdict();
    } finally {
      this.#claiming = false;
    }
  }

  async #claimUntilVerdict(): Promise<void> {
    const session = this.#session;
    for (;;) {
      const v = await this.claim();
      if (session !== this.#session || this.#fenced()) return; // a lapse meanwhile
      if (v) {
        this.#state = v;
        this.#error = null;
        this.#hooks.verdict(v);
        return;
      }
      await new Promise((r) => setTimeout(r, CLAIM_RETRY_MS));
      if (session !== this.#session || this.#state !== "claiming") return;
    }
  }

  /** The peer speaks again before a verdict: back to plain COLO. */
  peerBack(): void {
    if (this.#state === "claiming") this.#state = "leased";
  }

  /** COLO ended: a winner keeps its lease (and the key); any other side lets its lease go. */
  left(): void {
    if (this.#state === "won") return;
    const lease = this.#lease;
    this.#stopTimers();
    this.#session++;
    this.#lease = null;
    if (this.#state === "leased" || this.#state === "claiming") this.#state = "idle";
    if (lease) void this.#gw.revoke(lease).catch(() => {});
  }

  /** The agent closes: its lease (and a key it won) go. */
  async close(): Promise<void> {
    const lease = this.#lease;
    this.#stopTimers();
    this.#session++;
    this.#lease = null;
    if (lease) await this.#gw.revoke(lease).catch(() => {});
  }

  // --- internals ----------------------------------------------------------------------------

  #fenced(): boolean {
    return this.#state === "fenced";
  }

  /** A state in which this side's lease counts (and so can lapse). */
  #holdsLease(): boolean {
    return this.#state === "leased" || this.#state === "claiming" || this.#state === "won";
  }

  #lapse(why: string): void {
    const was = this.#state;
    this.#state = "fenced";
    this.#error = why;
    this.#stopTimers();
    if (was === "won") this.#hooks.fence();
    else this.#hooks.verdict("lost");
  }

  /** Renewals every third of the TTL while the lease counts (a grant that failed is retried). */
  #scheduleRenew(): void {
    const session = this.#session;
    clearTimeout(this.#renewTimer);
    this.#renewTimer = setTimeout(async () => {
      if (session !== this.#session || !this.#holdsLease()) return;
      if (this.#lease) await this.renew();
      else await this.acquire();
      if (session === this.#session) this.#scheduleRenew();
    }, (this.#spec.ttlS * 1000) / 3);
  }

  /** A timer at the lapse deadline, so a lapse fences at once (again if it fired early). */
  #armLapse(): void {
    clearTimeout(this.#lapseTimer);
    this.#lapseTimer = setTimeout(() => {
      if (!this.checkLapse() && this.#lease && this.#holdsLease()) this.#armLapse();
    }, Math.max(1, Math.ceil(this.#deadline - this.#now())));
  }

  #stopTimers(): void {
    clearTimeout(this.#renewTimer);
    clearTimeout(this.#lapseTimer);
  }
}

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Every request to etcd gets a quarter of the TTL, at most 2 s (a renewal every third of it). */
export function requestTimeoutMs(spec: ArbiterSpec): number {
  return Math.min(2000, spec.ttlS * 250);
}

/**
 * The agent's arbiter: etcd's gateway at `spec.url`; verdicts go to the side in COLO through
 * `colo`, and a fenced side's output stops at once (`machine`'s guest stops too after a win).
 */
export function arbiterFor(
  spec: ArbiterSpec,
  colo: { verdict(v: "won" | "lost"): void },
  machine: { guestOutput: GuestOutput; stop(): Promise<unknown> },
): ColoArbiter {
  const gateway = new EtcdGateway(spec.url, requestTimeoutMs(spec));
  return new ColoArbiter(spec, gateway, {
    verdict: (v) => {
      if (v === "lost") machine.guestOutput.fenced = true;
      colo.verdict(v);
    },
    fence: () => {
      machine.guestOutput.fenced = true;
      void machine.stop().catch(() => {});
    },
  }, `ferry pid ${Deno.pid}`);
}
