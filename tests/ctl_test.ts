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
import { parameterValue, parseValue } from "../scripts/ctl.ts";
import type { Convergence } from "../domain/convergence.ts";
import { assessProgress } from "../domain/progress.ts";
import { type TestAgent } from "../harness/agent_process.ts";
import { startLocalAgent, startLocalAgents } from "./helpers/local_agent.ts";
import { REFUSING_PORT } from "./helpers/ports.ts";

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
  // What the agent says, from its one formula: ctl computes nothing of its own.
  const agentSays = (status: MigrationInfo["status"], convergence?: Convergence) =>
    assessProgress({
      status,
      total: ram.total,
      remaining: ram.remaining,
      remainingCost: ram.remaining,
      bandwidth: 100e6,
      downtimeLimit: 300,
      convergence,
    });
  const info = (status: MigrationInfo["status"], convergence?: Convergence): MigrationInfo => ({
    status,
    ram,
    "x-id": "out-1",
    "x-progress": agentSays(status, convergence),
  });
  const converging = info("active", { verdict: "converging", "eta-ms": 42, ratio: 0.2 });
  assert.equal(etaMs(converging), 42);
  assert.equal(
    progressLine(converging, 3, 8),
    "[######..]   75.0%  800.0 Mbit/s  remaining 16.0 MiB  pass 3  ETA 42 ms  active (converging)",
  );
  // Stalled: no ETA (the old line made one up from remaining / mbps).
  const stalled = info("active", { verdict: "stalled", ratio: 0.9, suggestion: "x" });
  assert.equal(etaMs(stalled), undefined);
  assert.equal(
    progressLine(stalled, 3, 8),
    "[######..]   75.0%  800.0 Mbit/s  remaining 16.0 MiB  pass 3  ETA --  active (stalled)",
  );
  assert.match(progressLine(info("active"), 2, 8), /ETA estimating {2}active \(estimating\)$/);
  // Pages left: never a full bar. Completed: the agent says 100.
  const almost = { ...info("active"), "x-progress": { ...agentSays("active")!, percent: 99.9 } };
  assert.match(progressLine(almost, 3, 8), /^\[#######\.\] {2} 99\.9%/);
  assert.match(progressLine(info("completed"), 3, 8), /^\[########\] {2}100\.0%/);
  // No x-progress (a destination): no numbers rather than invented ones.
  assert.equal(
    progressLine({ status: "active", "x-id": "in-1" }, 0, 8),
    "[........]     --%  0.0 Mbit/s  remaining --  pass 0  ETA --  active",
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

Deno.test("set: sizes take the suffixes --ram takes; other parameters are left as they are", () => {
  assert.equal(parameterValue("1G", "max-bandwidth"), 2 ** 30);
  assert.equal(parameterValue("64M", "xbzrle-cache-size"), 64 * 2 ** 20);
  assert.equal(parameterValue("1.5g", "max-postcopy-bandwidth"), 1.5 * 2 ** 30);
  assert.equal(parameterValue("65536", "max-bandwidth"), 65536);
  assert.equal(parameterValue("null", "max-bandwidth"), null);
  assert.throws(
    () => parameterValue("fast", "max-bandwidth"),
    /max-bandwidth: invalid size 'fast'/,
  );
  assert.equal(parameterValue("500", "downtime-limit"), 500);
  assert.equal(parameterValue("1G", "downtime-limit"), "1G", "not a size: the agent decides");
  assert.equal(parameterValue("tls0", "tls-creds"), "tls0");
});

Deno.test("--help and usage errors: the usage text and exit 2, no stack trace", async () => {
  const help = await ctl(["--help"]);
  assert.equal(help.code, 2);
  for (
    const part of ["--agent URL", "--token TOKEN", "--watch", "default:", "examples:", "watch"]
  ) {
    assert.ok(help.stdout.includes(part), `--help names ${part}`);
  }
  for (
    const args of [["--port", "3"], [], ["frobnicate"], ["info", "--watch"], ["set", "x"], [
      "watch",
      "now",
    ]]
  ) {
    const r = await ctl(["--agent", `http://127.0.0.1:${REFUSING_PORT}`, ...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(r.stderr, /^ferry ctl: .+\n\nusage: deno task ctl/, args.join(" "));
    assert.ok(!/Uncaught|\n\s+at /.test(r.stderr), `no stack trace for ${args.join(" ")}`);
  }
  const size = await ctl([
    "--agent",
    `http://127.0.0.1:${REFUSING_PORT}`,
    "set",
    "max-bandwidth=9Q",
  ]);
  assert.equal(size.code, 2);
  assert.match(size.stderr, /max-bandwidth: invalid size '9Q': expected a number with an optional/);
});

Deno.test("ctl drives real agents: set, caps, info, migrate --watch, errors", async () => {
  const agents: TestAgent[] = [];
  try {
    // An idle guest: the CLI's view of a migration does not need a busy vCPU.
    const [dst, src] = await startLocalAgents(
      (a) => (agents.push(a), a),
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", "--workload", "idle"],
    );
    const agent = ["--agent", src.base];

    const set = await ctl([
      ...agent,
      "set",
      "max-bandwidth=16M",
      "downtime-limit=500",
      "tls-creds=",
    ]);
    assert.equal(set.code, 0, set.stderr);
    assert.equal(set.stdout, "max-bandwidth=16777216\ndowntime-limit=500\ntls-creds=\n");
    const params = (await src.api("GET", "/parameters")).body;
    assert.equal(params["downtime-limit"], 500);
    assert.equal(params["max-bandwidth"], 16777216);

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
    const failed = await ctl([...agent, "migrate", `tcp:127.0.0.1:${REFUSING_PORT}`, "--watch"]);
    assert.equal(failed.code, 1, failed.stdout + failed.stderr);
    const failure = (await src.api("GET", "/migrations/current")).body;
    assert.equal(failure.status, "failed");
    assert.ok(
      failed.stdout.includes(`${failure["x-id"]} failed: ${failure["error-desc"]}`),
      failed.stdout,
    );

    // 16 MiB at 16 MiB/s: about a second of live progress.
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
    assert.equal(shown.ram.total, 16 * 2 ** 20);

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
  const agent = await startLocalAgent(["--ram", "4M", "--api-token", "s3cret"]);
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
  const gone = await ctl(["--agent", `http://127.0.0.1:${REFUSING_PORT}`, "info"]);
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, /cannot reach/);
});

Deno.test("ctl watch attaches to a stalled migration: no ETA while stalled, then its end", async () => {
  const agents: TestAgent[] = [];
  try {
    const dst = await startLocalAgent(["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"]);
    agents.push(dst);
    // A 14 MiB working set rewritten all the time, sent at 16 MiB/s: every pass leaves
    // ~14 MiB, far above what 300 ms at 16 MiB/s can send at switchover.
    const src = await startLocalAgent([
      "--ram",
      "16M",
      "--fill",
      "random",
      "--workload",
      "increment,start=1M,end=15M",
    ]);
    agents.push(src);
    const agent = ["--agent", src.base];
    const slow = await ctl([...agent, "set", "max-bandwidth=16M", "downtime-limit=300"]);
    assert.equal(slow.stdout, "max-bandwidth=16777216\ndowntime-limit=300\n", slow.stderr);
    const none = await ctl([...agent, "watch"]);
    assert.equal(none.code, 2);
    assert.match(none.stderr, /no migration to watch/);
    const started = await src.api("POST", "/migrations", { uri: dst.incomingUri });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const id = started.body["x-id"];
    await src.waitStatus(/^active$/); // the watcher attaches to an active migration

    const watcher = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", CTL, ...agent, "watch"],
      env: { NO_COLOR: "1" },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const output = watcher.output();
    // Stalled (or not converging) as the agent judges it, then a bandwidth that fits.
    const deadline = Date.now() + 60_000;
    let state = "";
    while (!/^(stalled|not-converging)$/.test(state)) {
      assert.ok(Date.now() < deadline, `never stalled; x-progress state ${state}`);
      await new Promise((r) => setTimeout(r, 100));
      state = (await src.api("GET", "/migrations/current")).body["x-progress"]?.state ?? "";
    }
    // Let the watcher draw a few stalled lines before the migration is let go.
    await new Promise((r) => setTimeout(r, 800));
    const fast = await ctl([...agent, "set", "max-bandwidth=1G"]);
    assert.equal(fast.stdout, "max-bandwidth=1073741824\n", fast.stderr);
    const out = await output;
    const text = new TextDecoder().decode(out.stdout);
    assert.equal(out.code, 0, text + new TextDecoder().decode(out.stderr));
    const lines = text.trimEnd().split("\n");
    assert.match(lines[0], new RegExp(`^watching ${id} \\(source, active\\)$`));
    const stuck = lines.filter((l) => /active \((stalled|not-converging)\)$/.test(l));
    assert.ok(stuck.length >= 1, text);
    for (const l of stuck) assert.match(l, /ETA -- /, `no ETA while stalled: ${l}`);
    for (const l of lines.slice(1, -2)) assert.ok(!l.includes("100.0%"), `100 % too early: ${l}`);
    assert.match(lines.at(-2)!, /^\[#{24}\] {2}100\.0%.* completed$/);
    assert.match(lines.at(-1)!, new RegExp(`^${id} completed in .*passes, downtime`));
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});
