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
  parseSse,
  progressLine,
  type SseMessage,
  summaryLine,
} from "../scripts/ctl_watch.ts";
import { parseValue } from "../scripts/ctl.ts";
import { type AgentProcess, startAgent, startAgents } from "./helpers/agent_process.ts";

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

Deno.test("sse parser: any split of a stream into chunks gives the same events", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  const text = fc.string({ unit: fc.constantFrom("a", "b", " ", ":", "{", "é", "\n") });
  const message = fc.record({
    id: fc.option(fc.stringMatching(/^[0-9]{1,4}$/), { nil: undefined }),
    event: fc.constantFrom("message", "MIGRATION", "progress"),
    data: text,
  });
  fc.assert(
    fc.property(
      fc.array(message, { maxLength: 8 }),
      fc.array(fc.nat(), { maxLength: 6 }),
      fc.boolean(),
      (messages: SseMessage[], cuts, crlf) => {
        const nl = crlf ? "\r\n" : "\n";
        const wire = ": hello" + nl + nl +
          messages.map((m) =>
            (m.id === undefined ? "" : `id: ${m.id}${nl}`) +
            (m.event === "message" ? "" : `event:${m.event}${nl}`) +
            m.data.split("\n").map((l) => `data: ${l}${nl}`).join("") + `: beat${nl}${nl}`
          ).join("");
        const points = [...new Set(cuts.map((c) => c % (wire.length + 1)))].sort((a, b) => a - b);
        let rest = "";
        const got: SseMessage[] = [];
        let from = 0;
        for (const p of [...points, wire.length]) {
          const parsed = parseSse(rest + wire.slice(from, p));
          got.push(...parsed.messages);
          rest = parsed.rest;
          from = p;
        }
        const plain = (m: SseMessage) => ({ id: m.id, event: m.event, data: m.data });
        assert.deepEqual(got.map(plain), messages.map(plain));
        assert.equal(rest, "");
      },
    ),
    { seed },
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
    // An idle guest: the CLI's view of a migration does not need a busy vCPU.
    const [dst, src] = await startAgents(
      (a) => (agents.push(a), a),
      ["--ram", "16M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "16M", "--fill", "random", "--workload", "idle"],
    );
    const agent = ["--agent", src.base];

    const set = await ctl([
      ...agent,
      "set",
      "max-bandwidth=16777216",
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
    const failed = await ctl([...agent, "migrate", `tcp:127.0.0.1:${closedPort()}`, "--watch"]);
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
