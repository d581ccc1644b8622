/**
 * Test helper for the kvstore sample guest (guests/assembly/kvstore.ts): a client that keeps
 * sending commands to the source of a migration until it stops taking them, then to the
 * destination, as docs/guests.md says a client should; the answers it must get; and the
 * store's SUM and FILL values computed here, to check what the guest computed.
 *
 * @module
 */
import assert from "node:assert/strict";
import { type Json, type TestAgent } from "../../harness/agent_process.ts";

/** One command the guest took (202): its text and which side took it. */
export interface Sent {
  command: string;
  to: "source" | "destination";
}

/** A client writing commands in a loop; see {@link startKvClient}. */
export interface KvClient {
  /** Every command taken, in the order sent. */
  sent: Sent[];
  /** 409 answers met (with their detail), and on which side. */
  refusals: { to: Sent["to"]; detail: string }[];
  /** Commands taken by `to` so far. */
  count(to: Sent["to"]): number;
  /** Stops after the command in flight; resolves when stopped (rejects if the loop failed). */
  stop(): Promise<void>;
}

/**
 * Sends `next(i)` for i = 0, 1, ... one at a time, each as one line, to the source; when a
 * side refuses (409), asks `GET /machine` where the guest is (the destination once it no
 * longer waits in `inmigrate`, else the source) and sends it there.
 */
export function startKvClient(
  source: TestAgent,
  destination: TestAgent,
  next: (i: number) => string,
): KvClient {
  const sent: Sent[] = [];
  const refusals: KvClient["refusals"] = [];
  let to: Sent["to"] = "source";
  let stopping = false;
  const agent = (side: Sent["to"]) => (side === "source" ? source : destination);
  const loop = (async () => {
    for (let i = 0; !stopping; i++) {
      const command = next(i);
      const deadline = Date.now() + 60_000;
      for (;;) {
        const r: Response = await fetch(`${agent(to).base}/machine/input`, {
          method: "POST",
          body: `${command}\n`,
        });
        if (r.status === 202) {
          await r.body?.cancel();
          sent.push({ command, to });
          break;
        }
        const problem = await r.json();
        assert.equal(r.status, 409, JSON.stringify(problem));
        refusals.push({ to, detail: problem.detail });
        const there = (await destination.api<Json>("GET", "/machine")).body.runstate;
        to = there === "inmigrate" ? "source" : "destination";
        assert.ok(Date.now() < deadline, `no side took "${command}" in 60 s: ${problem.detail}`);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    }
  })();
  return {
    sent,
    refusals,
    count: (side) => sent.filter((s) => s.to === side).length,
    async stop() {
      stopping = true;
      await loop;
    },
  };
}

/** The answer line the kvstore gives to `command`, given the values `store` holds (updated). */
export function expectedAnswer(command: string, store: Map<string, string>): string {
  const [verb, key] = command.split(" ", 2);
  const value = command.slice(verb.length + key.length + 2);
  if (verb === "SET") {
    store.set(key, value);
    return "OK";
  }
  if (verb === "GET") return store.has(key) ? `VALUE ${store.get(key)}` : "NOT_FOUND";
  if (verb === "FILL") {
    // FILL n size [prefix] (memory permitting: the model does not know the cap).
    const [n, size, prefix = "fill:"] = command.split(" ").slice(1);
    for (let i = 0; i < Number(n); i++) store.set(`${prefix}${i}`, fillValue(i, Number(size)));
    return `OK ${n}`;
  }
  throw new Error(`expectedAnswer: no model of ${verb}`);
}

/** The value `FILL` stores for item `i` (`size` letters; the guest's fillValue). */
export function fillValue(i: number, size: number): string {
  let x = (Math.imul(i, 2654435761) + 1) >>> 0;
  const out = new Uint8Array(size);
  for (let j = 0; j < size; j++) {
    x = (x ^ (x << 13)) >>> 0;
    x = (x ^ (x >>> 17)) >>> 0;
    x = (x ^ (x << 5)) >>> 0;
    out[j] = 97 + ((x >>> 8) % 26);
  }
  return new TextDecoder().decode(out);
}

/** The kvstore's `SUM` of `entries`: Σ FNV-1a 64 of "key value" (mod 2^64), 16 hex digits. */
export function kvSum(entries: Iterable<[string, string]>): string {
  const prime = 0x100000001b3n;
  let total = 0n;
  for (const [k, v] of entries) {
    let h = 0xcbf29ce484222325n;
    for (const b of new TextEncoder().encode(`${k} ${v}`)) {
      h = BigInt.asUintN(64, (h ^ BigInt(b)) * prime);
    }
    total = BigInt.asUintN(64, total + h);
  }
  return total.toString(16).padStart(16, "0");
}

/**
 * The records the kvstore's log (guests/assembly/kvlog.ts) holds after `commands`, all sent
 * while persisting: each SET as it came, each FILL's items as SETs (reads add none; DEL and a
 * command that failed are not modelled).
 */
export function logRecords(commands: readonly string[]): string[] {
  const out: string[] = [];
  for (const c of commands) {
    const [verb, n, size, prefix = "fill:"] = c.split(" ");
    if (verb === "SET") out.push(c);
    else if (verb === "FILL") {
      for (let i = 0; i < Number(n); i++) {
        out.push(`SET ${prefix}${i} ${fillValue(i, Number(size))}`);
      }
    } else if (verb === "DEL") throw new Error("logRecords: no model of DEL");
  }
  return out;
}
