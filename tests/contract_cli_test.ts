/**
 * Issue 3, items 5 and 9, through main.ts as a real process: `--api-token` /
 * FERRY_API_TOKEN guard every request but /healthz and the API reference with 401 problems,
 * `--listen unix:PATH` serves on a unix socket, and `--global` / `--only-migratable` reach
 * GET /globals; and issue 20, item 2: `--help` and bad command lines get the usage, exit 2.
 */
import assert from "node:assert/strict";
import { startLocalAgent } from "./helpers/local_agent.ts";
import { rawRequest } from "./helpers/raw_http.ts";
import { parseCommandLine, START_OPTIONS, UsageError } from "../cli.ts";
import { USAGE } from "../cli_usage.ts";

async function get(base: string, path: string, auth?: string): Promise<Response> {
  return await fetch(base + path, { headers: auth === undefined ? {} : { authorization: auth } });
}

async function expect401(r: Response): Promise<void> {
  assert.equal(r.status, 401);
  assert.equal(r.headers.get("content-type"), "application/problem+json");
  assert.match(r.headers.get("www-authenticate") ?? "", /^Bearer/);
  const body = await r.json();
  assert.equal(body.status, 401);
  assert.equal(typeof body.detail, "string");
}

Deno.test("--api-token: /healthz and the API reference are open, everything else needs the bearer token", async () => {
  const agent = await startLocalAgent(["--ram", "4M", "--api-token", "s3cret-token"]);
  try {
    const health = await get(agent.base, "/healthz");
    assert.equal(health.status, 200);
    await health.body?.cancel();
    // The reference describes the API and holds no secret: a browser opens /docs without a
    // token. Host and Origin are still checked (a rebinding page cannot read it either).
    const docs = await get(agent.base, "/docs");
    assert.equal(docs.status, 200);
    assert.match(await docs.text(), /swagger-ui/);
    const doc = await get(agent.base, "/openapi.json");
    assert.equal(doc.status, 200);
    const document = await doc.json();
    assert.equal(document.components.securitySchemes.bearerAuth.scheme, "bearer");
    assert.equal(document.servers[0].url, agent.base, "Try it out goes to this agent");
    for (const path of ["/openapi.yaml", "/docs/swagger-ui-dist/swagger-ui.css"]) {
      const r = await get(agent.base, path);
      assert.equal(r.status, 200, path);
      await r.body?.cancel();
    }
    for (const path of ["/docs", "/openapi.json"]) {
      const rebound = await rawRequest(agent.base, "GET", path, { host: "evil.example" });
      assert.equal(rebound.status, 403, `${path} with a foreign Host`);
      assert.match(JSON.parse(rebound.body).detail, /^Host '/);
      const foreign = await rawRequest(agent.base, "GET", path, {
        origin: "http://evil.example",
      });
      assert.equal(foreign.status, 403, `${path} with a foreign Origin`);
      assert.match(JSON.parse(foreign.body).detail, /^Origin '/);
    }
    for (const path of ["/parameters", "/migrations/current", "/events", "/nowhere"]) {
      await expect401(await get(agent.base, path));
      await expect401(await get(agent.base, path, "Bearer wrong"));
      await expect401(await get(agent.base, path, "Bearer s3cret-token-longer"));
      await expect401(await get(agent.base, path, "Basic czNjcmV0LXRva2Vu"));
    }
    const ok = await get(agent.base, "/parameters", "Bearer s3cret-token");
    assert.equal(ok.status, 200);
    assert.equal((await ok.json())["downtime-limit"], 300);
    const lower = await get(agent.base, "/capabilities", "bearer s3cret-token");
    assert.equal(lower.status, 200, "the scheme is case-insensitive");
    await lower.body?.cancel();
    // A refused request changes nothing.
    const patch = await fetch(agent.base + "/parameters", {
      method: "PATCH",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ "downtime-limit": 999 }),
    });
    await expect401(patch);
    const after = await get(agent.base, "/parameters", "Bearer s3cret-token");
    assert.equal((await after.json())["downtime-limit"], 300);
  } finally {
    await agent.stop();
  }
});

Deno.test("FERRY_API_TOKEN works like --api-token", async () => {
  // Given to this agent only: test modules share this process's environment.
  const agent = await startLocalAgent(["--ram", "4M"], { env: { FERRY_API_TOKEN: "from-env" } });
  try {
    await expect401(await get(agent.base, "/globals"));
    const ok = await get(agent.base, "/globals", "Bearer from-env");
    assert.equal(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await agent.stop();
  }
});

// One agent for both: it listens on a unix socket and carries the --global flags; reading the
// globals (and a refused blocker) changes nothing the socket check reads.
Deno.test("--listen unix:PATH, --global migration.* and --only-migratable", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ferry-unix-" });
  const path = `${dir}/api.sock`;
  const agent = await startLocalAgent([
    "--ram",
    "4M",
    "--listen",
    `unix:${path}`,
    "--only-migratable",
    "--global",
    "migration.send-configuration=off",
    "--global",
    "migration.decompress-error-check=no",
  ]);
  const client = Deno.createHttpClient(
    { proxy: { transport: "unix", path } } as Deno.CreateHttpClientOptions,
  );
  try {
    await t.step("--listen unix:PATH serves the API on a unix socket", async () => {
      assert.equal((await Deno.lstat(path)).isSocket, true);
      const r = await fetch("http://ferry/parameters", { client });
      assert.equal(r.status, 200);
      assert.equal((await r.json())["max-bandwidth"], 33554432);
    });
    await t.step("--global migration.* and --only-migratable reach GET /globals", async () => {
      const r = await fetch("http://ferry/globals", { client });
      assert.deepEqual(await r.json(), {
        "store-global-state": true,
        "only-migratable": true,
        "send-configuration": false,
        "send-section-footer": true,
        "decompress-error-check": false,
      });
      const refused = await fetch("http://ferry/blockers", {
        client,
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ reason: "r" }),
      });
      assert.equal(refused.status, 409);
      assert.equal(
        (await refused.json()).detail,
        "disallowing migration blocker (--only_migratable) for: r",
      );
    });
  } finally {
    client.close();
    await agent.stop();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("--help prints a usage naming every flag, exit 2; a bad command line gets it too, no stack trace", async () => {
  const main = new URL("../main.ts", import.meta.url).pathname;
  const run = async (...args: string[]) => {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", main, ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const d = new TextDecoder();
    return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
  };
  const help = await run("--help");
  assert.equal(help.code, 2);
  assert.equal(help.stdout.trim(), USAGE);
  for (const [name, o] of Object.entries(START_OPTIONS)) {
    const flag = name.length === 1 ? `-${name}` : `--${name}`;
    assert.ok(USAGE.includes(flag), `the usage names ${flag}`);
    const fallback = (o as { default?: unknown }).default;
    if (typeof fallback === "string" && fallback !== "") {
      assert.ok(USAGE.includes(`default ${fallback}`), `the usage gives ${flag}'s default`);
    }
  }
  assert.match(USAGE, /examples\n {2}deno task start/);
  // Each is refused by cli.ts before a guest is allocated or anything listens (issue 20,
  // item 2): those last five used to get as far as building the agent, then exit 1 without
  // the usage.
  const missing = `${await Deno.makeTempDir({ prefix: "ferry-cli-" })}/missing.wasm`;
  const small = missing.replace("missing.wasm", "small.img");
  await Deno.writeFile(small, new Uint8Array(4096));
  const bads: [string[], RegExp][] = [
    [["--port", "8080"], /Unknown option '--port'/],
    [["--fill", "nope"], /--fill expects zero, random or pattern/],
    [["--ram-block", "x"], /--ram-block expects NAME=SIZE, got 'x'/],
    [["--huge-pages", "bogus"], /--huge-pages expects on, off, auto, got 'bogus'/],
    [["--incoming", "bogus:x"], /unknown migration protocol: bogus:x \(one of tcp:HOST:PORT/],
    [["--incoming", "tcp:nohost"], /missing port in 'tcp:nohost'/],
    [["--ram", "4M", "--ram-block", "pc.ram=4M"], /--ram is the pc.ram block/],
    [["--ram-block", "a=4M", "--ram-block", "a=8M"], /duplicate RAM block name 'a'/],
    [["--ram", "4M", "--workload", "increment,end=8M"], /increment range .* outside RAM/],
    [["--guest", `wasm:${missing}`], /wasm guest: cannot read .*missing\.wasm: No such file/],
    [
      ["--drive", "id=d,file=/tmp/x.img,size=100K"],
      /--drive: size 100K is not a positive multiple/,
    ],
    [
      ["--drive", `id=d,file=${small},size=1M`],
      /--drive d: .*small\.img has 4096 bytes, not the size/,
    ],
  ];
  try {
    // The first and the last (refused by parseArgs, and by the last check cli.ts makes) as
    // the user meets them, from the agent process; every one from cli.ts's parser, which
    // main.ts turns into that output (each process costs the suite ~0.4 CPU-s).
    const asProcess = [bads[0], bads[bads.length - 1]];
    const runs = await Promise.all(asProcess.map(([bad]) => run(...bad)));
    for (const [i, [bad, why]] of asProcess.entries()) {
      const r = runs[i];
      const name = bad.join(" ");
      assert.equal(r.code, 2, `${name}: exit status (${r.stderr})`);
      assert.match(r.stderr, /^ferry: .+\n\nusage: deno task start/, `${name}: the usage`);
      assert.match(r.stderr.split("\n")[0], why, `${name}: says why`);
      assert.doesNotMatch(r.stderr, /Uncaught|\n\s+at /, `${name}: no stack trace`);
      assert.doesNotMatch(r.stderr, /"msg"/, `${name}: refused before anything started`);
    }
    for (const [bad, why] of bads) {
      const name = bad.join(" ");
      const e = await parseCommandLine(bad).then(() => null, (e: unknown) => e);
      assert.ok(e instanceof UsageError, `${name}: a usage error (${e})`);
      assert.match(e.message, why, `${name}: says why`);
    }
  } finally {
    await Deno.remove(missing.slice(0, missing.lastIndexOf("/")), { recursive: true });
  }
});
