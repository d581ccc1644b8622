/**
 * TLS between two real agents with a throw-away PKI made by openssl at test time: a
 * trusted peer migrates (main channel, return path and multifd all TLS); an untrusted or
 * plain-TCP peer is refused and nothing is written to the guest.
 */
import assert from "node:assert/strict";
import { type TestAgent, type Track } from "../harness/agent_process.ts";
import { startLocalAgents } from "./helpers/local_agent.ts";
import { modulePkiDirs, type PkiDirs } from "../harness/pki.ts";
import { freePort } from "./helpers/ports.ts";
import { assertSameRam } from "./helpers/same_ram.ts";

/** Runs `fn` with the module's PKI; every agent it tracks is stopped afterwards. */
async function withPki(
  fn: (pki: PkiDirs, track: Track) => Promise<void>,
) {
  const pki = await modulePkiDirs();
  const agents: TestAgent[] = [];
  try {
    await fn(pki, (a) => (agents.push(a), a));
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
}

/** Destination arguments: 8 MiB, incoming defer, server credentials `tls0` that verify peers. */
function destinationArgs(pki: PkiDirs): string[] {
  return [
    "--ram",
    "8M",
    "--incoming",
    "defer",
    "--object",
    `tls-creds-x509,id=tls0,dir=${pki.server},endpoint=server,verify-peer=on`,
  ];
}

/** Source arguments: 8 MiB of random RAM, client credentials `tls1` from `dir` if given. */
function sourceArgs(dir: string | null, ...workload: string[]): string[] {
  const args = ["--ram", "8M", "--fill", "random", "--workload", ...workload];
  if (dir) args.push("--object", `tls-creds-x509,id=tls1,dir=${dir},endpoint=client`);
  return args;
}

/** Takes TLS on the destination (tls-creds, then migrate-incoming on a fresh port); its URI. */
async function listenTls(dst: TestAgent): Promise<string> {
  assert.equal((await dst.api("PATCH", "/parameters", { "tls-creds": "tls0" })).status, 200);
  const uri = `tcp:127.0.0.1:${freePort()}`;
  const r = await dst.api("POST", "/migrations/incoming", { uri });
  assert.equal(r.status, 202, JSON.stringify(r.body));
  return uri;
}

/** Sets the source's parameters: unlimited bandwidth, and TLS (`tls1`) or plain channels. */
async function useTls(src: TestAgent, tls: boolean): Promise<TestAgent> {
  const r = await src.api("PATCH", "/parameters", {
    "max-bandwidth": 0,
    "tls-creds": tls ? "tls1" : "",
  });
  assert.equal(r.status, 200, JSON.stringify(r.body));
  return src;
}

// One destination and two sources for everything: the untrusted source, refused with its
// credentials and then as plain TCP, runs on and serves for the errors; then the trusted one
// migrates to the destination that refused them.
Deno.test("tls: refusals, errors, and a trusted peer over mutual TLS", async (t) => {
  await withPki(async (pki, track) => {
    const [dst, untrusted, good] = await startLocalAgents(
      track,
      destinationArgs(pki),
      [...sourceArgs(pki.untrustedClient, "idle"), "--allow-exec"],
      // The guest increments its RAM from just before its migration (-S, then cont).
      sourceArgs(pki.client, "increment", "-S"),
    );
    const uri = await listenTls(dst);
    await t.step(
      "an untrusted client and a plain-TCP client are refused; the guest is untouched",
      () => refused(dst, untrusted, uri),
    );
    await t.step("errors name the problem", () => errors(untrusted, pki));
    await t.step(
      "a trusted peer migrates over mutual TLS, return path and multifd included",
      () => trusted(dst, good, uri),
    );
  });
});

/**
 * A source with untrusted credentials, then the same one without TLS, is refused by `dst`
 * listening on `uri`: nothing reaches its guest and it still waits.
 */
async function refused(dst: TestAgent, untrusted: TestAgent, uri: string): Promise<void> {
  const before = (await dst.api("GET", "/machine/digest?at=now")).body.blocks;
  for (const tls of [true, false]) {
    await useTls(untrusted, tls);
    assert.equal((await untrusted.api("POST", "/migrations", { uri })).status, 202);
    const info = await untrusted.waitStatus(/completed|failed/);
    assert.equal(
      info.status,
      "failed",
      `source with ${tls ? "untrusted credentials" : "plain tcp"}: ${JSON.stringify(info)}`,
    );
    assert.equal((await untrusted.api("GET", "/machine")).body.runstate, "running");
  }
  // Nothing reached the guest; the destination still waits.
  assert.equal((await dst.api("GET", "/machine")).body.runstate, "inmigrate");
  assert.deepEqual((await dst.api("GET", "/machine/digest?at=now")).body.blocks, before);
}

/** The trusted source migrates to `dst` (which refused others on `uri`) whole. */
async function trusted(dst: TestAgent, src: TestAgent, uri: string): Promise<void> {
  await useTls(src, true);
  await src.api("PATCH", "/capabilities", { "return-path": true, "x-multifd": true });
  assert.equal((await src.api("POST", "/machine/cont")).status, 202);
  assert.equal((await src.api("POST", "/migrations", { uri })).status, 202);
  const info = await src.waitStatus(/completed|failed/);
  assert.equal(info.status, "completed", JSON.stringify(info));
  assert.ok(info.ram["multifd-bytes"] > 0);
  assert.equal((await dst.waitStatus(/completed|failed/)).status, "completed");
  await assertSameRam(src, dst);
}

/** On a source with client credentials `tls1`: its TLS errors; an agent whose files are missing. */
async function errors(src: TestAgent, pki: PkiDirs): Promise<void> {
  await useTls(src, true);
  await src.api("PATCH", "/parameters", { "tls-creds": "nope" });
  const r = await src.api("POST", "/migrations", { uri: "tcp:127.0.0.1:9" });
  assert.equal(r.status, 400);
  assert.equal(r.body.detail, "No TLS credentials with id 'nope'");
  await src.api("PATCH", "/parameters", { "tls-creds": "tls1" });
  const e = await src.api("POST", "/migrations", { uri: "exec:cat > /dev/null" });
  assert.equal(e.status, 400);
  assert.match(e.body.detail, /TLS is only supported on tcp: and unix:/);
  // A missing credentials file stops the agent at start with the path in the message.
  const bad = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../main.ts", import.meta.url).pathname,
      "--listen",
      "127.0.0.1:0",
      "--object",
      `tls-creds-x509,id=x,dir=${pki.root}/nowhere,endpoint=server`,
    ],
    stdout: "null",
    stderr: "piped",
  });
  const out = await bad.output();
  assert.equal(out.success, false);
  assert.match(
    new TextDecoder().decode(out.stderr),
    /Unable to access credentials .*nowhere\/.*\.pem/,
  );
}
