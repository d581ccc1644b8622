/**
 * Issue 16, items 1 and 2 off loopback for real: in a network namespace of the test's own,
 * an agent asked to listen on the namespace's veth address without a token refuses to
 * start; with `--api-token` it serves there, and a client in the other namespace needs the
 * token (401 without it) and the agent's address in Host (the loopback names do not name
 * an agent on another address: 403). Skipped, saying why, where namespaces cannot be made.
 */
import assert from "node:assert/strict";
import { NetnsPair, netnsUnavailable } from "./helpers/netns.ts";
import { refusedStart } from "./helpers/refused_start.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const unavailable = netnsUnavailable();
if (unavailable) console.log(`netns test skipped: ${unavailable}`);

/** `curl` run in namespace `ns`: the status and body. */
async function curlIn(
  ns: string,
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  const args = ["netns", "exec", ns, "curl", "-s", "-m", "20", "-w", "\n%{http_code}"];
  for (const [k, v] of Object.entries(headers)) args.push("-H", `${k}: ${v}`);
  const out = await new Deno.Command("ip", { args: [...args, url], stdout: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  const cut = text.lastIndexOf("\n");
  return { status: Number(text.slice(cut + 1)), body: text.slice(0, cut) };
}

Deno.test({
  name: "off loopback: no start without a token; with one, token and Host are required",
  ignore: unavailable !== null,
  sanitizeResources: false,
  async fn() {
    const pair = NetnsPair.create();
    let agent: Deno.ChildProcess | undefined;
    try {
      const inB = ["ip", "netns", "exec", pair.b];
      const refused = await refusedStart(
        ["--listen", `${pair.addrB}:0`, "--ram", "4M"],
        { FERRY_API_TOKEN: "" },
        30_000,
        inB,
      );
      assert.equal(refused.listened, false);
      assert.equal(refused.code, 2, "a usage error");
      assert.match(refused.stderr, /is not a loopback address/);

      const token = "netns-t0ken";
      agent = new Deno.Command(inB[0], {
        args: [...inB.slice(1), Deno.execPath(), "run", "-A", MAIN, "--listen", `${pair.addrB}:0`],
        env: { FERRY_API_TOKEN: token },
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).spawn();
      let log = "";
      let addr = "";
      const reader = agent.stderr.pipeThrough(new TextDecoderStream()).getReader();
      while (addr === "") {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the agent exited: ${log}`);
        log += value;
        const line = log.split("\n").find((l) => l.includes('"msg":"listening"'));
        if (line) addr = JSON.parse(line).addr;
      }
      const drained = (async () => {
        for (;;) {
          const r = await reader.read().catch(() => ({ done: true, value: "" }));
          if (r.done) return;
          log += r.value;
        }
      })();
      const port = addr.split(":").pop();
      assert.equal(addr, `${pair.addrB}:${port}`);
      const base = `http://${addr}`;
      const bearer = { authorization: `Bearer ${token}` };
      assert.equal((await curlIn(pair.a, `${base}/healthz`, {})).status, 200);
      const anonymous = await curlIn(pair.a, `${base}/migrations/current`, {});
      assert.equal(anonymous.status, 401, anonymous.body);
      const ok = await curlIn(pair.a, `${base}/migrations/current`, bearer);
      assert.equal(ok.status, 200, ok.body);
      assert.equal(JSON.parse(ok.body).status, "none");
      for (const host of [`localhost:${port}`, `127.0.0.1:${port}`, "evil.example"]) {
        const r = await curlIn(pair.a, `${base}/migrations/current`, { ...bearer, host });
        assert.equal(r.status, 403, `${host}: ${r.body}`);
        assert.match(JSON.parse(r.body).detail, /^Host '/);
      }
      agent.kill("SIGTERM");
      await agent.status;
      await drained;
      assert.ok(log.includes('"msg":"listening"'), "the log was read");
      assert.equal(log.includes(token), false, "the token appeared in the log");
    } finally {
      try {
        agent?.kill("SIGKILL");
      } catch { /* gone */ }
      await agent?.status;
      pair.destroy();
    }
  },
});
