/**
 * Test helper for the two-host test: two network namespaces of the test's own joined by a
 * veth pair (10.210.N.1 and .2, which exist only inside them), the link shaped with
 * `tc netem` (or `tbf` where the kernel has no netem), and Ferry agents run inside them
 * with `ip netns exec`, their API on a unix socket in a temporary directory (a socket file
 * is reachable from every namespace; 127.0.0.1 inside a namespace is not).
 *
 * @module
 */
import type { Json } from "../../harness/agent_process.ts";
import { paced } from "../../harness/agent_process.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** Runs a command synchronously; returns its exit code and output. */
function run(cmd: string, args: string[]): { ok: boolean; out: string } {
  try {
    const r = new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).outputSync();
    const dec = new TextDecoder();
    return { ok: r.success, out: (dec.decode(r.stdout) + dec.decode(r.stderr)).trim() };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

function must(cmd: string, args: string[]): void {
  const r = run(cmd, args);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")}: ${r.out}`);
}

function tag(): string {
  return Array.from(
    crypto.getRandomValues(new Uint8Array(3)),
    (b) => b.toString(16).padStart(2, "0"),
  )
    .join("");
}

/** Why two namespaces cannot be made here, or null when they can (checked by trying). */
export function netnsUnavailable(): string | null {
  if (Deno.build.os !== "linux") return `not Linux (${Deno.build.os})`;
  if (Deno.uid() !== 0) return `not root (uid ${Deno.uid()}): network namespaces need root`;
  for (const tool of ["ip", "tc"]) {
    if (!run(tool, ["-V"]).ok) return `'${tool}' not found (apt-get install -y iproute2)`;
  }
  const ns = `ferry-probe-${tag()}`;
  const add = run("ip", ["netns", "add", ns]);
  if (!add.ok) return `the kernel refused a network namespace: ${add.out}`;
  try {
    const veth = run("ip", ["-n", ns, "link", "add", "pa", "type", "veth", "peer", "name", "pb"]);
    if (!veth.ok) return `the kernel refused a veth pair: ${veth.out}`;
  } finally {
    run("ip", ["netns", "del", ns]);
  }
  return null;
}

/** Two namespaces joined by a veth pair. */
export class NetnsPair {
  readonly a: string;
  readonly b: string;
  readonly vethA: string;
  readonly vethB: string;
  /** 10.210.N.1 (in a) and 10.210.N.2 (in b). */
  readonly addrA: string;
  readonly addrB: string;
  /** How the link is shaped (what `tc` accepted). */
  shaping = "";
  /** The netem rate and delay the link was made with (when netem is there). */
  #netem: { rate: string; delay: string } | null = null;
  readonly #tag: string;
  readonly #n: number;
  /** A third namespace linked to a and b apart from their link (see {@link third}). */
  #third: string | null = null;

  private constructor() {
    const t = tag();
    this.#tag = t;
    this.a = `ferry-${t}-a`;
    this.b = `ferry-${t}-b`;
    this.vethA = `fa${t}`;
    this.vethB = `fb${t}`;
    const n = crypto.getRandomValues(new Uint8Array(1))[0];
    this.#n = n;
    this.addrA = `10.210.${n}.1`;
    this.addrB = `10.210.${n}.2`;
  }

  /** Creates both namespaces, the veth pair and its addresses, and shapes the link. */
  static create(rate = "1gbit", delay = "2ms"): NetnsPair {
    const p = new NetnsPair();
    must("ip", ["netns", "add", p.a]);
    try {
      must("ip", ["netns", "add", p.b]);
      must("ip", [
        "-n",
        p.a,
        "link",
        "add",
        p.vethA,
        "type",
        "veth",
        "peer",
        "name",
        p.vethB,
        "netns",
        p.b,
      ]);
      for (const [ns, dev, addr] of [[p.a, p.vethA, p.addrA], [p.b, p.vethB, p.addrB]]) {
        must("ip", ["-n", ns, "addr", "add", `${addr}/24`, "dev", dev]);
        must("ip", ["-n", ns, "link", "set", "lo", "up"]);
        must("ip", ["-n", ns, "link", "set", dev, "up"]);
      }
      const netem = ["qdisc", "add", "dev", "", "root", "netem", "rate", rate, "delay", delay];
      const tbf = [
        "qdisc",
        "add",
        "dev",
        "",
        "root",
        "tbf",
        "rate",
        rate,
        "burst",
        "256kb",
        "latency",
        "50ms",
      ];
      for (const [ns, dev] of [[p.a, p.vethA], [p.b, p.vethB]]) {
        const withDev = (args: string[]) => args.map((x) => x === "" ? dev : x);
        const r = run("ip", ["netns", "exec", ns, "tc", ...withDev(netem)]);
        if (r.ok) {
          p.shaping = `netem rate ${rate} delay ${delay}`;
          p.#netem = { rate, delay };
        } else {
          must("ip", ["netns", "exec", ns, "tc", ...withDev(tbf)]);
          p.shaping = `tbf rate ${rate} (no netem in this kernel: ${r.out}; so no added delay)`;
        }
      }
    } catch (e) {
      p.destroy();
      throw e;
    }
    return p;
  }

  /** How {@link drop} drops packets here. */
  get dropping(): string {
    return this.#netem ? "tc netem loss 100%" : "blackhole routes (no netem in this kernel)";
  }

  /**
   * Drops every packet both ways (`on`) or carries them again: the link carries nothing while
   * both ends stay up and nobody is told, as a dead path. With netem, `tc qdisc change … netem
   * loss 100%`; without it (a kernel without sch_netem), a blackhole route to the other end in
   * each namespace, which discards packets just as silently.
   */
  drop(on: boolean): void {
    if (this.#netem) {
      const { rate, delay } = this.#netem;
      for (const [ns, dev] of [[this.a, this.vethA], [this.b, this.vethB]]) {
        const shape = ["rate", rate, "delay", delay, "loss", on ? "100%" : "0%"];
        must(
          "ip",
          ["netns", "exec", ns, "tc", "qdisc", "change", "dev", dev, "root", "netem"].concat(shape),
        );
      }
      return;
    }
    for (const [ns, to] of [[this.a, this.addrB], [this.b, this.addrA]]) {
      must("ip", ["-n", ns, "route", on ? "add" : "del", "blackhole", `${to}/32`]);
    }
  }

  /**
   * A third namespace with a link of its own to a and to b (10.211.N.1 ↔ .2 in a, 10.212.N.1 ↔
   * .2 in b), which {@link drop} leaves alone: a service both sides reach across a partition.
   * Returns the namespace and its address as a and as b see it.
   */
  third(): { ns: string; forA: string; forB: string } {
    const ns = `ferry-${this.#tag}-c`;
    const forA = `10.211.${this.#n}.1`;
    const forB = `10.212.${this.#n}.1`;
    must("ip", ["netns", "add", ns]);
    this.#third = ns;
    must("ip", ["-n", ns, "link", "set", "lo", "up"]);
    for (const [side, veth, net] of [[this.a, "ca", "211"], [this.b, "cb", "212"]]) {
      const dev = `${veth}${this.#tag}`;
      must("ip", [
        "-n",
        ns,
        "link",
        "add",
        dev,
        "type",
        "veth",
        "peer",
        "name",
        dev,
        "netns",
        side,
      ]);
      must("ip", ["-n", ns, "addr", "add", `10.${net}.${this.#n}.1/24`, "dev", dev]);
      must("ip", ["-n", side, "addr", "add", `10.${net}.${this.#n}.2/24`, "dev", dev]);
      must("ip", ["-n", ns, "link", "set", dev, "up"]);
      must("ip", ["-n", side, "link", "set", dev, "up"]);
    }
    return { ns, forA, forB };
  }

  /** `ip link set down` (or up) on a's end of the link. */
  setLink(up: boolean): void {
    must("ip", ["-n", this.a, "link", "set", this.vethA, up ? "up" : "down"]);
  }

  /** Deletes both namespaces (and with them the veth pair). Safe to call twice. */
  destroy(): void {
    run("ip", ["netns", "del", this.a]);
    run("ip", ["netns", "del", this.b]);
    if (this.#third) run("ip", ["netns", "del", this.#third]);
  }
}

/** An agent running inside a namespace, its API on a unix socket. */
export interface NsAgent {
  incomingUri: string | null;
  /** The agent's process id (`ip netns exec` execs it: the same process). */
  pid: number;
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: Json }>;
  /** A request as it comes (a stream's body, say). */
  request(path: string, init?: RequestInit): Promise<Response>;
  waitStatus(pattern: RegExp, timeoutMs?: number): Promise<Json>;
  stop(): Promise<void>;
  log(): string;
}

/** Starts `main.ts` inside namespace `ns` with its API on `socket` (and `env` added). */
export async function startNsAgent(
  ns: string,
  socket: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<NsAgent> {
  const child = new Deno.Command("ip", {
    args: [
      "netns",
      "exec",
      ns,
      Deno.execPath(),
      "run",
      "-A",
      MAIN,
      "--listen",
      `unix:${socket}`,
      ...paced(args),
    ],
    // As harness/agent_process.ts: test agents keep the arrival digest (opt-in).
    env: { FERRY_ARRIVAL_DIGEST: "1", ...env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let text = "";
  let listening: { incoming: string | null } | null = null;
  const drained = (async () => {
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      const line = text.split("\n").find((l) => l.includes('"msg":"listening"'));
      if (!listening && line) listening = JSON.parse(line);
    }
  })();
  const client = Deno.createHttpClient({ proxy: { transport: "unix", path: socket } });
  const api = async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`http://ferry${path}`, {
      client,
      method,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const t = await r.text();
    return { status: r.status, body: t ? JSON.parse(t) : null };
  };
  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await drained.catch(() => {});
    client.close();
  };
  const end = Date.now() + 30_000;
  while (!listening) {
    if (Date.now() > end) {
      await stop();
      throw new Error(`agent in ${ns} did not start: ${text}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const ready = listening as { incoming: string | null };
  return {
    incomingUri: ready.incoming,
    pid: child.pid,
    api,
    request: (path, init) => fetch(`http://ferry${path}`, { ...init, client }),
    async waitStatus(pattern, timeoutMs = 60_000) {
      const until = Date.now() + timeoutMs;
      let last: Json = {};
      while (Date.now() < until) {
        last = (await api("GET", "/migrations/current")).body;
        if (pattern.test(String(last.status))) return last;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`status ${JSON.stringify(last)} never matched ${pattern}`);
    },
    stop,
    log: () => text,
  };
}
