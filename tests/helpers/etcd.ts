/**
 * Test helper: a one-member etcd (Debian's `etcd-server`, 3.4: its JSON gateway is what
 * `--colo-arbiter` talks to) in a network namespace, its data in a temporary directory, both
 * gone after {@link EtcdMember.dispose}.
 *
 * @module
 */

/** Why etcd cannot run here, or null when it can. */
export function etcdUnavailable(): string | null {
  try {
    const r = new Deno.Command("etcd", { args: ["--version"], stdout: "piped", stderr: "piped" })
      .outputSync();
    return r.success ? null : "'etcd --version' failed";
  } catch {
    return "etcd is not installed (apt-get install -y etcd-server)";
  }
}

/** An etcd member in a namespace; its data stay until {@link EtcdMember.dispose}. */
export class EtcdMember {
  readonly #args: string[];
  readonly #dir: string;
  #child: Deno.ChildProcess | null = null;
  #drained: Promise<void> = Promise.resolve();
  #text = "";

  private constructor(args: string[], dir: string) {
    this.#args = args;
    this.#dir = dir;
  }

  /**
   * Starts etcd in namespace `ns`, serving clients on `hosts` (port 2379 each; its peer port
   * on the namespace's loopback), and waits until it says it serves them.
   */
  static async start(ns: string, hosts: string[]): Promise<EtcdMember> {
    const dir = await Deno.makeTempDir({ prefix: "ferry-etcd-" });
    const clients = hosts.map((h) => `http://${h}:2379`).join(",");
    const peer = "http://127.0.0.1:2380";
    const m = new EtcdMember([
      "netns",
      "exec",
      ns,
      "etcd",
      "--data-dir",
      `${dir}/data`,
      "--listen-client-urls",
      clients,
      "--advertise-client-urls",
      clients,
      "--listen-peer-urls",
      peer,
      "--initial-advertise-peer-urls",
      peer,
      "--initial-cluster",
      `default=${peer}`,
    ], dir);
    try {
      await m.restart();
    } catch (e) {
      await m.dispose();
      throw e;
    }
    return m;
  }

  /** What etcd wrote on stderr. */
  log(): string {
    return this.#text;
  }

  /** Starts the process again (its data as it left them) and waits until it serves. */
  async restart(): Promise<void> {
    await this.stop();
    const child = new Deno.Command("ip", {
      args: this.#args,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    this.#child = child;
    let text = "";
    let ready = false;
    this.#drained = (async () => {
      for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
        text += chunk;
        this.#text += chunk;
        if (/ready to serve client requests/.test(text)) ready = true;
      }
    })().catch(() => {});
    const end = Date.now() + 20_000;
    while (!ready) {
      if (Date.now() > end) {
        throw new Error(`etcd did not say it serves clients: ${text.slice(-2000)}`);
      }
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Kills the process (SIGKILL: as a crash); its data stay. */
  async stop(): Promise<void> {
    const child = this.#child;
    this.#child = null;
    if (!child) return;
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
    await child.status;
    await this.#drained;
  }

  /** Kills the process and removes its data. */
  async dispose(): Promise<void> {
    await this.stop();
    await Deno.remove(this.#dir, { recursive: true });
  }
}
