/**
 * Issue 7, item 5 (logs): one JSON object per stderr line with time, level and msg first;
 * `--log-level` hides the less severe lines; one `migration state` line per state change
 * with the migration id (failures at error with their error-desc).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  createLogger,
  LOG_LEVELS,
  type LogLevel,
  migrationEventLogger,
  parseLogLevel,
} from "../domain/log.ts";
import { type Json, startAgent, startAgents, type TestAgent } from "../harness/agent_process.ts";
import { waitFor } from "../harness/wait.ts";

const AT = new Date("2026-01-02T03:04:05.678Z");

function capture(level: LogLevel): { lines: Json[]; logger: ReturnType<typeof createLogger> } {
  const lines: Json[] = [];
  const logger = createLogger(level, (line) => {
    assert.ok(!line.includes("\n"), `one line: ${line}`);
    lines.push(JSON.parse(line));
  }, () => AT);
  return { lines, logger };
}

/** The JSON lines of an agent's stderr; every line must be one. */
function jsonLines(text: string): Json[] {
  return text.split("\n").filter((l) => l !== "").map((line) => {
    const parsed = JSON.parse(line);
    assert.match(parsed.time, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, line);
    assert.ok((LOG_LEVELS as readonly string[]).includes(parsed.level), line);
    assert.equal(typeof parsed.msg, "string", line);
    assert.deepEqual(Object.keys(parsed).slice(0, 3), ["time", "level", "msg"], line);
    return parsed;
  });
}

Deno.test("logger: a line passes exactly when its level is at or above the threshold", () => {
  const seed = Date.now();
  console.log("fast-check seed", seed);
  fc.assert(
    fc.property(
      fc.constantFrom(...LOG_LEVELS),
      fc.array(fc.tuple(fc.constantFrom(...LOG_LEVELS), fc.string()), { maxLength: 20 }),
      (threshold, calls) => {
        const { lines, logger } = capture(threshold);
        for (const [level, msg] of calls) logger[level](msg, { n: 1 });
        const want = calls.filter(([l]) => LOG_LEVELS.indexOf(l) >= LOG_LEVELS.indexOf(threshold));
        assert.deepEqual(
          lines,
          want.map(([level, msg]) => ({ time: AT.toISOString(), level, msg, n: 1 })),
        );
      },
    ),
    { seed },
  );
});

Deno.test("logger: fixed members lead and cannot be overridden; announce ignores the threshold", () => {
  const { lines, logger } = capture("error");
  logger.warn("hidden");
  logger.error("boom", { level: "debug", msg: "x", time: 0, big: 2n, err: new Error("why") });
  logger.announce("listening", { addr: "127.0.0.1:1", incoming: null });
  assert.deepEqual(lines, [
    {
      time: AT.toISOString(),
      level: "error",
      msg: "boom",
      big: "2",
      err: { name: "Error", message: "why" },
    },
    {
      time: AT.toISOString(),
      level: "info",
      msg: "listening",
      addr: "127.0.0.1:1",
      incoming: null,
    },
  ]);
  assert.equal(parseLogLevel("WARN"), "warn");
  assert.throws(() => parseLogLevel("loud"), /--log-level expects one of debug, info, warn, error/);
});

Deno.test("event logger: state lines with ids, failures at error with error-desc, passes at debug", () => {
  const { lines, logger } = capture("debug");
  const log = migrationEventLogger(
    logger,
    (id) => id === "out-1" ? "Connection refused" : undefined,
  );
  const ev = (event: string, data: unknown) => log({ id: 0, event, data, time: Date.now() });
  ev("MIGRATION", { status: "setup", side: "source", id: "out-1" });
  ev("MIGRATION_PASS", { pass: 1 });
  ev("progress", { status: "active" });
  ev("MIGRATION", { status: "failed", side: "source", id: "out-1" });
  ev("MIGRATION", { status: "cancelled", side: "source", id: "out-2" });
  const strip = lines.map(({ time: _t, ...rest }) => rest);
  assert.deepEqual(strip, [
    { level: "info", msg: "migration state", status: "setup", side: "source", id: "out-1" },
    { level: "debug", msg: "migration pass", pass: 1, id: "out-1" },
    {
      level: "error",
      msg: "migration state",
      status: "failed",
      side: "source",
      id: "out-1",
      "error-desc": "Connection refused",
    },
    { level: "warn", msg: "migration state", status: "cancelled", side: "source", id: "out-2" },
  ]);
});

Deno.test("agents log every state change of a migration as JSON lines with its id", async () => {
  const agents: TestAgent[] = [];
  try {
    const [dst, src] = await startAgents(
      (a) => (agents.push(a), a),
      ["--ram", "8M", "--incoming", "tcp:127.0.0.1:0"],
      ["--ram", "8M", "--fill", "random", "--log-level", "debug"],
    );
    const started = await src.api("POST", "/migrations", { uri: dst.incomingUri });
    assert.equal(started.status, 202, JSON.stringify(started.body));
    const id = started.body["x-id"];
    await src.waitStatus(/^completed$/);
    const arrived = await dst.waitStatus(/^completed$/);
    const states = (log: string, side: string) =>
      jsonLines(log).filter((l) => l.msg === "migration state" && l.side === side);
    // The last lines reach the pipe a little after the status.
    const done = (log: string, side: string) =>
      states(log, side).some((l) => l.status === "completed");
    await waitFor(
      "both agents to log completed",
      () => done(src.log(), "source") && done(dst.log(), "destination"),
    );
    const out = states(src.log(), "source");
    assert.deepEqual(out.map((l) => [l.status, l.id, l.level]), [
      ["setup", id, "info"],
      ["active", id, "info"],
      ["completed", id, "info"],
    ]);
    const passes = jsonLines(src.log()).filter((l) => l.msg === "migration pass");
    assert.ok(passes.length >= 1 && passes.every((l) => l.level === "debug" && l.id === id));
    const into = states(dst.log(), "destination");
    assert.deepEqual(into.map((l) => l.status), ["setup", "active", "completed"]);
    assert.ok(into.every((l) => l.id === arrived["x-id"]));
    assert.equal(jsonLines(dst.log()).filter((l) => l.msg === "migration pass").length, 0);
  } finally {
    await Promise.all(agents.map((a) => a.stop()));
  }
});

Deno.test("--log-level warn hides info lines but keeps failures (and the listening line)", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = closed.addr.port;
  closed.close();
  const src = await startAgent(["--ram", "4M", "--log-level", "warn"]);
  try {
    const started = await src.api("POST", "/migrations", { uri: `tcp:127.0.0.1:${port}` });
    assert.equal(started.status, 202);
    const failed = await src.waitStatus(/^failed$/);
    await waitFor(
      "the failure logged",
      () => jsonLines(src.log()).some((l) => l.msg === "migration state" && l.status === "failed"),
    );
    const lines = jsonLines(src.log());
    assert.deepEqual(lines.filter((l) => l.level === "info").map((l) => l.msg), ["listening"]);
    const errors = lines.filter((l) => l.msg === "migration state");
    assert.deepEqual(errors.map((l) => [l.level, l.status, l.id]), [
      ["error", "failed", started.body["x-id"]],
    ]);
    assert.equal(errors[0]["error-desc"], failed["error-desc"]);
    assert.ok(failed["error-desc"].length > 0);
  } finally {
    await src.stop();
  }
});
