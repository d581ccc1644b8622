/**
 * `deno task ctl ... --watch`: follows an agent's `/events` stream (fetch streaming and
 * npm:eventsource-parser) for one migration and draws its progress: one updating
 * line on a terminal (bar, percent, Mbit/s, remaining, pass, ETA, status), one line per
 * event otherwise, then a summary line. Percent, remaining, ETA and the verdict are the
 * agent's `x-progress`, never computed here.
 *
 * @module
 */
import { createParser } from "eventsource-parser";
import type { MigrationInfo } from "../sdk/client.ts";

export type { MigrationInfo };

/** One Server-Sent Event. */
export interface SseMessage {
  /** The `id:` field, when the event had one. */
  id?: string;
  /** The `event:` field (`message` when absent). */
  event: string;
  /** The `data:` lines, joined with newlines. */
  data: string;
}

/** Bytes for people: `12.3 MiB`. */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(1)} ${units[u]}`;
}

/** Milliseconds for people: `850 ms`, `12.4 s`, `3m05s`. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  const s = Math.round(ms / 1000);
  return `${Math.floor(s / 60)}m${String(s % 60).padStart(2, "0")}s`;
}

/** The agent's `x-progress` (domain/progress.ts): what every client shows, computed once. */
export type Progress = NonNullable<MigrationInfo["x-progress"]>;

/** The ETA in ms, as the agent's `x-progress` gives it (none while it cannot know). */
export function etaMs(info: MigrationInfo): number | undefined {
  return info["x-progress"]?.["eta-ms"];
}

/** The ETA for people: the agent's, else what there is instead (`estimating`, `done`, `--`). */
function etaText(p: Progress | undefined): string {
  const eta = p?.["eta-ms"];
  if (eta !== undefined) return formatDuration(eta);
  if (p?.state === "completed") return "done";
  return p?.state === "estimating" ? "estimating" : "--";
}

/**
 * One progress line from the agent's `x-progress`, e.g. `[####......]  42.0%  812.3 Mbit/s
 * remaining 9.1 MiB  pass 2  ETA 95 ms  active (converging)`; `--` where the agent has no
 * number (a destination, a failed migration).
 */
export function progressLine(info: MigrationInfo, pass: number, barWidth = 24): string {
  const p = info["x-progress"];
  const filled = p ? Math.min(barWidth, Math.floor((p.percent / 100) * barWidth)) : 0;
  const bar = `[${"#".repeat(filled)}${".".repeat(barWidth - filled)}]`;
  const ram = info.ram;
  const remaining = p?.remaining ?? ram?.remaining;
  const state = p && p.state !== info.status ? `${info.status} (${p.state})` : info.status;
  return [
    bar,
    `${(p ? p.percent.toFixed(1) : "--").padStart(5)}%`,
    `${(ram?.mbps ?? 0).toFixed(1)} Mbit/s`,
    `remaining ${remaining === undefined ? "--" : formatBytes(remaining)}`,
    `pass ${Math.max(pass, ram?.["dirty-sync-count"] ?? 0)}`,
    `ETA ${etaText(p)}`,
    state,
  ].join("  ");
}

/** The closing line for a finished migration. */
export function summaryLine(info: MigrationInfo): string {
  const id = info["x-id"] ?? "migration";
  const took = info["total-time"] === undefined ? "" : ` in ${formatDuration(info["total-time"])}`;
  if (info.status === "completed") {
    const ram = info.ram;
    const parts = [
      ram ? `${formatBytes(ram.transferred)} transferred` : undefined,
      ram ? `${ram["dirty-sync-count"]} passes` : undefined,
      info.downtime === undefined ? undefined : `downtime ${info.downtime} ms`,
      ram ? `${ram.mbps.toFixed(1)} Mbit/s` : undefined,
    ].filter(Boolean);
    return `${id} completed${took}: ${parts.join(", ")}`;
  }
  if (info.status === "failed") return `${id} failed: ${info["error-desc"] ?? "no error text"}`;
  return `${id} ${info.status}${took}`;
}

/** Where a watch reads from and writes to. */
export interface WatchIo {
  /** Opens `/events` (after `lastEventId` when reconnecting); the body stream. */
  openEvents(lastEventId?: string): Promise<ReadableStream<Uint8Array>>;
  /** GET /migrations/{id}. */
  fetchInfo(id: string): Promise<MigrationInfo>;
  /** Writes text as it is (no newline added). */
  write(text: string): void;
  /** True: redraw one line with `\r`; false: one line per event. */
  tty: boolean;
  /** The terminal's width: a redrawn line is cut to fit, or it would wrap. */
  columns?: number;
}

const FINAL = new Set(["completed", "failed", "cancelled"]);
const RECONNECTS = 5;

/**
 * Follows migration `id` (of `side`, the source's by default) on an already opened event
 * stream until it reaches a final status (reconnecting with Last-Event-ID if the stream ends
 * early); returns its final MigrationInfo after writing the summary line. `from` is what is
 * known of it already (an attached watch has queried it).
 */
export async function watchMigration(
  io: WatchIo,
  id: string,
  stream: ReadableStream<Uint8Array>,
  side: "source" | "destination" = "source",
  from: MigrationInfo = { status: "setup", "x-id": id },
): Promise<MigrationInfo> {
  let lastId: string | undefined;
  let pass = 0;
  let latest: MigrationInfo = from;
  let drawn = "";
  const draw = (line: string) => {
    if (line === drawn) return; // the agent's counters had not moved since the last event
    if (io.tty) io.write(`\r${line.slice(0, Math.max(1, (io.columns ?? Infinity) - 1))}\x1b[K`);
    else io.write(`${line}\n`);
    drawn = line;
  };
  for (let attempt = 0;; attempt++) {
    const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
    const messages: SseMessage[] = [];
    const parser = createParser({
      onEvent: (e) => messages.push({ id: e.id, event: e.event ?? "message", data: e.data }),
    });
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parser.feed(value);
        for (const m of messages.splice(0)) {
          lastId = m.id ?? lastId;
          const data = JSON.parse(m.data);
          if (m.event === "MIGRATION") {
            if (data.side !== side || (data.id !== undefined && data.id !== id)) continue;
            latest = { ...latest, status: data.status };
            if (FINAL.has(data.status)) {
              const info = await io.fetchInfo(id);
              draw(progressLine(info, pass));
              io.write(`${io.tty ? "\n" : ""}${summaryLine(info)}\n`);
              return info;
            }
            if (io.tty) draw(progressLine(latest, pass));
            else io.write(`status ${data.status}\n`);
          } else if (m.event === "MIGRATION_PASS") {
            pass = Math.max(pass, data.pass);
          } else if (m.event === "progress" && data["x-id"] === id) {
            latest = data;
            draw(progressLine(latest, pass));
          }
        }
      }
    } finally {
      await reader.cancel().catch(() => {});
    }
    // The stream ended early (agent restarting, or this client dropped for lagging).
    const info = await io.fetchInfo(id);
    if (FINAL.has(info.status) || attempt >= RECONNECTS) {
      if (drawn && io.tty) io.write("\n");
      io.write(`${summaryLine(info)}\n`);
      return info;
    }
    await new Promise((r) => setTimeout(r, 200));
    stream = await io.openEvents(lastId);
  }
}
