/**
 * Issue 16, item 3: `--api-tls CERT,KEY[,CLIENT_CA]` serves the API over TLS (the same PEM
 * files as migration TLS), mutual when a client CA is given: a client without a
 * certificate that CA signed never reaches the API. `deno task ctl` talks to it with
 * `--cacert`, `--cert` and `--key`. TLS alone does not let an agent listen off loopback
 * without a token; client certificates do.
 */
import assert from "node:assert/strict";
import { withAgents } from "../harness/agent_process.ts";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { makeCas } from "../harness/pki.ts";
import { parseCommandLine, UsageError } from "../cli.ts";
import { refusedStart } from "./helpers/refused_start.ts";

const CTL = new URL("../scripts/ctl.ts", import.meta.url).pathname;

async function withPki(fn: (work: string) => Promise<void>): Promise<void> {
  const root = await Deno.makeTempDir({ prefix: "ferry-api-tls-" });
  try {
    await makeCas(root);
    await fn(`${root}/work`);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
}

/** A client trusting CA A, presenting `leaf` (signed by A: `cli`; by B: `cliB`) if given. */
function client(work: string, leaf?: string): Deno.HttpClient {
  return Deno.createHttpClient({
    caCerts: [Deno.readTextFileSync(`${work}/caA-cert.pem`)],
    ...(leaf
      ? {
        cert: Deno.readTextFileSync(`${work}/${leaf}-cert.pem`),
        key: Deno.readTextFileSync(`${work}/${leaf}-key.pem`),
      }
      : {}),
  });
}

/** Rejects unless a request with `http` fails before any HTTP answer. */
async function assertNoAnswer(url: string, http: Deno.HttpClient | undefined, why: string) {
  let status: number | undefined;
  try {
    const r = await fetch(url, { client: http });
    status = r.status;
    await r.body?.cancel();
  } catch {
    return;
  }
  assert.fail(`${why}: got HTTP ${status}`);
}

/** The API over TLS, Host and Origin still checked. */
async function serverOnly(work: string): Promise<void> {
  await withAgents(async (track) => {
    const trusting = client(work);
    try {
      const tls = `${work}/srv-cert.pem,${work}/srv-key.pem`;
      const agent = track(
        await startLocalAgent(["--ram", "4M", "--api-tls", tls], { client: trusting }),
      );
      assert.match(agent.base, /^https:\/\/127\.0\.0\.1:\d+$/);
      const r = await agent.api("GET", "/migrations/current");
      assert.equal(r.status, 200);
      assert.equal(r.body.status, "none");
      const events = await fetch(`${agent.base}/events`, { client: trusting });
      assert.equal(events.headers.get("content-type"), "text/event-stream");
      await events.body?.cancel();
      const foreign = await fetch(`${agent.base}/parameters`, {
        client: trusting,
        headers: { origin: "https://evil.example" },
      });
      assert.equal(foreign.status, 403);
      assert.match((await foreign.json()).detail, /^Origin 'https:\/\/evil\.example'/);
      const own = await fetch(`${agent.base}/parameters`, {
        client: trusting,
        headers: { origin: agent.base },
      });
      assert.equal(own.status, 200);
      await own.body?.cancel();
      await assertNoAnswer(
        agent.base.replace("https:", "http:") + "/healthz",
        undefined,
        "plain HTTP",
      );
      await assertNoAnswer(`${agent.base}/healthz`, undefined, "a client not trusting CA A");
    } finally {
      trusting.close();
    }
  });
}

/** Only clients with a certificate from the client CA, ctl among them. */
async function mutual(work: string): Promise<void> {
  await withAgents(async (track) => {
    const good = client(work, "cli");
    const untrusted = client(work, "cliB");
    const anonymous = client(work);
    try {
      const tls = `${work}/srv-cert.pem,${work}/srv-key.pem,${work}/caA-cert.pem`;
      const agent = track(
        await startLocalAgent(["--ram", "4M", "--api-tls", tls], { client: good }),
      );
      assert.equal((await agent.api("GET", "/migrations/current")).body.status, "none");
      await assertNoAnswer(`${agent.base}/healthz`, anonymous, "no client certificate");
      await assertNoAnswer(`${agent.base}/migrations/current`, untrusted, "CA B's client");
      // ctl with the CA and a client certificate.
      const ctl = (leaf: string) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            CTL,
            "--agent",
            agent.base,
            "--cacert",
            `${work}/caA-cert.pem`,
            "--cert",
            `${work}/${leaf}-cert.pem`,
            "--key",
            `${work}/${leaf}-key.pem`,
            "info",
          ],
          env: { NO_COLOR: "1" },
          stdout: "piped",
          stderr: "piped",
        }).output();
      const ok = await ctl("cli");
      assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
      assert.equal(JSON.parse(new TextDecoder().decode(ok.stdout)).status, "none");
      const refused = await ctl("cliB");
      assert.equal(refused.code, 2);
      assert.match(new TextDecoder().decode(refused.stderr), /cannot reach/);
    } finally {
      good.close();
      untrusted.close();
      anonymous.close();
    }
  });
}

/** TLS alone does not let an agent listen off loopback; bad --api-tls values. */
async function refusals(work: string): Promise<void> {
  const r = await refusedStart(
    [
      "--listen",
      "0.0.0.0:0",
      "--ram",
      "4M",
      "--api-tls",
      `${work}/srv-cert.pem,${work}/srv-key.pem`,
    ],
    { FERRY_API_TOKEN: "" },
  );
  assert.equal(r.listened, false);
  assert.equal(r.code, 2, "a usage error");
  assert.match(r.stderr, /is not a loopback address/);
  // Bad values are refused by cli.ts's checks (main.ts: usage, exit 2, as above).
  const refusal = (args: string[]) => parseCommandLine(args).then(() => null, (e: unknown) => e);
  const bad = await refusal(["--ram", "4M", "--api-tls", `${work}/srv-cert.pem`]);
  assert.ok(bad instanceof UsageError, "a usage error");
  assert.match(bad.message, /--api-tls expects CERT,KEY\[,CLIENT_CA\]/);
  const missing = await refusal([
    "--ram",
    "4M",
    "--api-tls",
    `${work}/nope.pem,${work}/srv-key.pem`,
  ]);
  assert.ok(missing instanceof UsageError, "a usage error");
  assert.match(missing.message, /--api-tls: cannot read the certificate '.*nope\.pem'/);
}

// One PKI (CA A, CA B and their leaves, made with openssl) for the three checks.
Deno.test("--api-tls", async (t) => {
  await withPki(async (work) => {
    await t.step(
      "--api-tls CERT,KEY: the API over TLS, Host and Origin still checked",
      () => serverOnly(work),
    );
    await t.step(
      "--api-tls CERT,KEY,CLIENT_CA: only clients with a certificate from that CA",
      () => mutual(work),
    );
    await t.step(
      "TLS without client certificates does not let the agent listen off loopback without a token",
      () => refusals(work),
    );
  });
});
