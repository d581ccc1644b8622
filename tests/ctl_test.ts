/**
 * Issue 7, item 4: `deno task ctl` drives real agents — set, caps, info, migrate --watch
 * (exit 0 with live progress lines on completion, 1 on failure), errors with the seed's
 * text and exit 2 — and its SSE parser and progress formatting hold on their own.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  etaMs,
  type MigrationInfo,
  progressLine,
  summaryLine,
  watchMigration,
} from "../scripts/ctl_watch.ts";
import { parseValue } from "../scripts/ctl.ts";
import { type AgentProcess, startAgent } from "./helpers/agent_process.ts";

const CTL = new URL("../scripts/ctl.ts", import.meta.url).pathname;

/** Runs the CLI; its exit code and output. */
async function ctl(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CTL, ...args],
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

/** A loopback port nobody listens on. */
function closedPort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = l.addr.port;
  l.close();
  return port;
}

Deno.test("watch: any split of the event stream into chunks draws the same lines", async () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const id = "out-1";
  const info = (status: string, transferred = 0): MigrationInfo =>
    ({
      status,
      "x-id": id,
      "total-time": 1200,
      ram: {
        transferred,
        remaining: 1 << 20,
        total: 1 << 24,
        duplicate: 0,
        skipped: 0,
        normal: 0,
        "normal-bytes": transferred,
        "dirty-pages-rate": 0,
        mbps: 100,
        "dirty-sync-count": 1,
        "postcopy-requests": 0,
        "page-size": 4096,
        "multifd-bytes": 0,
      },
    }) as MigrationInfo;
  const step = fc.oneof(
    fc.nat(1 << 24).map((t) => ["progress", info("active", t)] as const),
    fc.integer({ min: 1, max: 9 }).map((n) => ["MIGRATION_PASS", { pass: n }] as const),
    fc.constant(["MIGRATION", { status: "active", side: "source", id }] as const),
    fc.constant(["MIGRATION", { status: "active", side: "destination", id: "in-1" }] as const),
  );
  const run = async (wire: string, cuts: number[]) => {
    const bytes = new TextEncoder().encode(wire);
    const points = [...new Set(cuts.map((c) => c % (bytes.length + 1)))].sort((a, b) => a - b);
    const chunks = [...points, bytes.length].map((p, i, all) => bytes.slice(all[i - 1] ?? 0, p));
    let out = "";
    await watchMigration(
      {
        openEvents: () => Promise.reject(new Error("no reconnect expected")),
        fetchInfo: () => Promise.resolve(info("completed", 1 << 24)),
        write: (t) => void (out += t),
        tty: false,
      },
      id,
      new ReadableStream({
        start(c) {
          for (const chunk of chunks) c.enqueue(chunk);
          c.close();
        },
      }),
    );
    return out;
  };
  await fc.assert(
    fc.asyncProperty(
      fc.array(step, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.boolean(),
      async (steps, cuts, crlf) => {
        const nl = crlf ? "\r\n" : "\n";
        const all = [...steps, ["MIGRATION", { status: "completed", side: "source", id }] as const];
        const wire = ": ferry events" + nl + nl +
          all.map(([event, data], i) =>
            `event: ${event}${nl}data: ${JSON.stringify(data)}${nl}id: ${
              i + 1
            }${nl}: beat${nl}${nl}`
          ).join("");
        const whole = await run(wire, []);
        assert.match(whole, /out-1 completed/, "the summary line");
        assert.equal(await run(wire, cuts), whole);
      },
    ),
    { seed, numRuns: 60 },
  );
});

Deno.test("values, progress line, ETA and summary", () => {
  assert.equal(parseValue("500"), 500);
  assert.equal(parseValue("-1.5"), -1.5);
  assert.equal(parseValue(""), "");
  assert.equal(parseValue("true"), true);
  assert.equal(parseValue("null"), null);
  assert.equal(parseValue("0x10"), "0x10");
  assert.equal(parseValue("007"), "007");
  assert.deepEqual(parseValue('[{"a":1}]'), [{ a: 1 }]);
  assert.equal(parseValue("tls0"), "tls0");
  const ram = {
    transferred: 48 << 20,
    remaining: 16 << 20,
    total: 64 << 20,
    duplicate: 0,
    skipped: 0,
    normal: 0,
    "normal-bytes": 0,
    mbps: 800,
    "dirty-sync-count": 2,
    "postcopy-requests": 0,
    "page-size": 4096,
    "multifd-bytes": 0,
  };
  const info: MigrationInfo = { status: "active", ram, "x-id": "out-1" };
  // 16 MiB at 800 Mbit/s: 167.77 ms.
  assert.equal(Math.round(etaMs(info)!), 168);
  const verdict: MigrationInfo = {
    ...info,
    "x-convergence": { verdict: "converging", "eta-ms": 42 },
  };
  assert.equal(etaMs(verdict), 42);
  assert.match(progressLine(verdict, 3, 8), /ETA 42 ms {2}active \(converging\)$/);
  assert.equal(etaMs({ ...info, ram: { ...ram, mbps: 0 } }), undefined);
  assert.equal(
    progressLine(info, 3, 8),
    "[######..]   75.0%  800.0 Mbit/s  remaining 16.0 MiB  pass 3  ETA 168 ms  active",
  );
  assert.equal(
    summaryLine({ status: "completed", ram, downtime: 12, "total-time": 1500, "x-id": "out-1" }),
    "out-1 completed in 1.5 s: 48.0 MiB transferred, 2 passes, downtime 12 ms, 800.0 Mbit/s",
  );
  assert.equal(
    summaryLine({ status: "failed", "error-desc": "Connection refused", "x-id": "out-2" }),
    "out-2 failed: Connection refused",
  );
});

Deno.test("ctl drives real agents: set, caps, info, migrate --watch, errors", async () => {
  const agents: AgentProcess[] = [];
  try {
    const dst = await startAgent(["--ram", "64M", "--incoming", "tcp:127.0.0.1:0"]);
    agents.push(dst);
    const src = await startAgent([
      "--ram",
      "64M",
      "--fill",
      "random",
      "--workload",
      "increment,start=1M,end=2M",
    ]);
    agents.push(src);
    const agent = ["--agent", src.base];

    const set = await ctl([
      ...agent,
      "set",
      "max-bandwidth=67108864",
      "downtime-limit=500",
      "tls-creds=",
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, "max-bandwidth=67108864\ndowntime-limit=500\ntls-creds=\n");
    const params = (await src.api("GET", "/parameters")).body;
    assert.equal(params["downtime-limit"], 500);
    assert.equal(params["max-bandwidth"], 67108864);

    const bad = await ctl([...agent, "set", "compress-level=10"]);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /Parameter 'compress_level' expects a value between 0 and 9/);
    const wrongType = await ctl([...agent, "set", "downtime-limit=soon"]);
    assert.equal(wrongType.code, 2);
    assert.match(wrongType.stderr, /downtime-limit/);
    assert.equal((await ctl([...agent, "caps", "events=perhaps"])).code, 2);
    assert.equal((await ctl([...agent, "frobnicate"])).code, 2);

    const caps = await ctl([...agent, "caps", "events=on", "xbzrle=off"]);
    assert.equal(caps.code, 0, caps.stderr);
    assert.equal(caps.stdout, "events=on\nxbzrle=off\n");
    assert.equal((await src.api("GET", "/capabilities")).body.events, true);

    const idle = await ctl([...agent, "info"]);
    assert.equal(idle.code, 0, idle.stderr);
    assert.deepEqual(JSON.parse(idle.stdout), { status: "none" });

    // A migration to a port nobody listens on fails: exit 1, with the reason.
    const failed = await ctl([...agent, "migrate", `tcp:127.0.0.1:${closedPort()}`, "--watch"]);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const failure = (await src.api("GET", "/migrations/current")).body;
    assert.equal(failure.status, "failed");
    assert.ok(
      failed.stdout.includes(`${failure["x-id"]} failed: ${failure["error-desc"]}`),
      failed.stdout,
    );

    // 64 MiB at 64 MiB/s: about a second of live progress.
    const run = await ctl([...agent, "migrate", dst.incomingUri!, "--watch"]);
    assert.equal(run.code, 0, run.stdout + run.stderr);
    const lines = run.stdout.trimEnd().split("\n");
    const done = (await src.api("GET", "/migrations/current")).body;
    assert.equal(done.status, "completed");
    assert.equal(lines[0], `started ${done["x-id"]} (setup)`);
    const live = lines.filter((l) => /Mbit\/s .*pass \d+ .*ETA .* active( \([a-z-]+\))?$/.test(l));
    assert.ok(live.length >= 1, run.stdout);
    assert.match(
      live[0],
      /^\[[#.]{24}\] +\d+\.\d% +\d+\.\d Mbit\/s {2}remaining \S+ \S+ {2}pass \d+/,
    );
    assert.match(lines.at(-1)!, new RegExp(`^${done["x-id"]} completed in .*passes, downtime`));
    assert.ok(!run.stdout.includes("\r"), "no redraws when stdout is not a terminal");
    await dst.waitStatus(/^completed$/);

    const info = await ctl([...agent, "info"]);
    assert.equal(info.code, 0);
    const shown = JSON.parse(info.stdout);
    assert.equal(shown["x-id"], done["x-id"]);
    assert.equal(shown.ram.total, 64 * 2 ** 20);

    // Wrong state: the seed's text, exit 2.
    const pause = await ctl([...agent, "pause"]);
    assert.equal(pause.code, 2);
    assert.match(pause.stderr, /migrate-pause is currently only supported during postcopy-active/);
    const cancel = await ctl([...agent, "cancel"]);
    assert.equal(cancel.code, 0, cancel.stderr);
    assert.equal(cancel.stdout, "status: completed\n");
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});

Deno.test("ctl: token from --token or FERRY_API_TOKEN; FERRY_AGENT; unreachable agent exits 2", async () => {
  const agent = await startAgent(["--ram", "4M", "--api-token", "s3cret"]);
  try {
    const denied = await ctl(["--agent", agent.base, "info"]);
    assert.equal(denied.code, 2);
    assert.match(denied.stderr, /Authentication required/);
    assert.equal((await ctl(["--agent", agent.base, "--token", "s3cret", "info"])).code, 0);
    const viaEnv = await ctl(["info"], { FERRY_AGENT: agent.base, FERRY_API_TOKEN: "s3cret" });
    assert.equal(viaEnv.code, 0, viaEnv.stderr);
    assert.equal(JSON.parse(viaEnv.stdout).status, "none");
  } finally {
    await agent.stop();
  }
  const gone = await ctl(["--agent", `http://127.0.0.1:${closedPort()}`, "info"]);
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /cannot reach/);
});
