/**
 * Structured logs: one JSON object per line on stderr, `{"time", "level", "msg", ...fields}`,
 * below a threshold (`--log-level`) dropped. Also the agent's event log: one line per
 * migration state change with the migration id (failures with their error text), and the
 * dirty-log passes at debug.
 *
 * @module
 */
import type { FerryEvent } from "./event_bus.ts";

/** The levels, least severe first. */
export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** A log level. */
export type LogLevel = typeof LOG_LEVELS[number];

/** Extra members of a log line. */
export type LogFields = Record<string, unknown>;

/** A structured logger. */
export interface Logger {
  /** The threshold: lines less severe are dropped. */
  readonly level: LogLevel;
  /** True when a line at `level` would be written. */
  enabled(level: LogLevel): boolean;
  /** Writes one line at `level` if it passes the threshold. */
  log(level: LogLevel, msg: string, fields?: LogFields): void;
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /**
   * Writes an `info` line whatever the threshold: for the announcements that tools wait
   * for (the `listening` line).
   */
  announce(msg: string, fields?: LogFields): void;
}

/** Parses a `--log-level` value; throws on anything else. */
export function parseLogLevel(text: string): LogLevel {
  const level = LOG_LEVELS.find((l) => l === text.toLowerCase());
  if (!level) throw new Error(`--log-level expects one of ${LOG_LEVELS.join(", ")}, got '${text}'`);
  return level;
}

const encoder = new TextEncoder();

/** Writes `line` and a newline to stderr, whole (no interleaving with other lines). */
function writeStderr(line: string): void {
  const bytes = encoder.encode(line + "\n");
  let done = 0;
  while (done < bytes.length) done += Deno.stderr.writeSync(bytes.subarray(done));
}

/** Makes JSON of values JSON cannot hold as they are (bigint, Error). */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/** One log line's text; `time`, `level` and `msg` come first and cannot be overridden. */
export function formatLine(time: Date, level: LogLevel, msg: string, fields: LogFields): string {
  const line: LogFields = { time: time.toISOString(), level, msg };
  for (const [key, value] of Object.entries(fields)) if (!(key in line)) line[key] = value;
  return JSON.stringify(line, replacer);
}

/** A logger writing lines at `level` and above through `write` (default: stderr). */
export function createLogger(
  level: LogLevel = "info",
  write: (line: string) => void = writeStderr,
  now: () => Date = () => new Date(),
): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const enabled = (l: LogLevel) => LOG_LEVELS.indexOf(l) >= threshold;
  const log = (l: LogLevel, msg: string, fields: LogFields = {}) => {
    if (enabled(l)) write(formatLine(now(), l, msg, fields));
  };
  return {
    level,
    enabled,
    log,
    debug: (msg, fields) => log("debug", msg, fields),
    info: (msg, fields) => log("info", msg, fields),
    warn: (msg, fields) => log("warn", msg, fields),
    error: (msg, fields) => log("error", msg, fields),
    announce: (msg, fields = {}) => write(formatLine(now(), "info", msg, fields)),
  };
}

/** The members of a MIGRATION event's data. */
interface MigrationEventData {
  status: string;
  side: string;
  id?: string;
}

/**
 * An event handler that logs migration events: one `migration state` line per MIGRATION
 * event (`failed` at error with the migration's `error-desc`, looked up by `errorOf`;
 * `cancelled` at warn; the rest at info) and a `migration pass` line per MIGRATION_PASS
 * at debug, carrying the id of the outgoing migration it belongs to.
 */
export function migrationEventLogger(
  logger: Logger,
  errorOf: (id: string) => string | undefined,
): (event: FerryEvent) => void {
  let outgoingId: string | undefined;
  return (event) => {
    if (event.event === "MIGRATION") {
      const { status, side, id } = event.data as MigrationEventData;
      if (side === "source") outgoingId = id;
      if (status === "failed") {
        let error: string | undefined;
        try {
          error = id === undefined ? undefined : errorOf(id);
        } catch { /* gone from the history */ }
        logger.error("migration state", { status, side, id, "error-desc": error });
      } else {
        logger.log(status === "cancelled" ? "warn" : "info", "migration state", {
          status,
          side,
          id,
        });
      }
    } else if (event.event === "MIGRATION_PASS" && logger.enabled("debug")) {
      const { pass } = event.data as { pass: number };
      logger.debug("migration pass", { pass, id: outgoingId });
    }
  };
}
