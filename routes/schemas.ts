/**
 * Response and request schemas shared by several routes (MigrationInfo, the migrate
 * request). Option schemas come from `domain/option_schemas.ts`.
 *
 * @module
 */
import { z } from "@hono/zod-openapi";
import { MIGRATION_STATUSES } from "../domain/state_machine.ts";
import { PROGRESS_FITS, PROGRESS_STATES } from "../domain/progress.ts";

const count = (d: string) => z.number().meta({ description: d });

/** Every event's `time`: when the agent published it. */
export const eventTime = z.string().meta({
  description: "When the agent published the event (ISO 8601, UTC); a replayed event keeps it.",
  example: "2026-12-06T10:17:03.250Z",
});

/** QMP MigrationStats. */
export const RamStatsSchema = z.object({
  transferred: count("Bytes sent on the migration channel(s)."),
  remaining: count("Bytes still to send (absent once completed).").optional(),
  total: count("Guest RAM in bytes."),
  duplicate: count("Zero pages sent."),
  skipped: count("Always 0 (legacy)."),
  normal: count("Whole pages sent."),
  "normal-bytes": count("normal × page-size."),
  "dirty-pages-rate": count(
    "Pages dirtied per second, measured over ≥ 1 s (absent once completed).",
  ).optional(),
  mbps: count("Throughput in Mbit/s: over the last 100 ms while running, overall once completed."),
  "dirty-sync-count": count("Dirty-log syncs (passes)."),
  "postcopy-requests": count("Pages the destination asked for in postcopy."),
  "page-size": count("Target page size in bytes."),
  "multifd-bytes": count("Bytes sent on multifd channels."),
}).meta({ id: "MigrationStats" });

/** QMP MigrationInfo plus Ferry's x- members. */
export const MigrationInfoSchema = z.object({
  status: z.enum(MIGRATION_STATUSES).meta({ description: "QMP MigrationStatus." }),
  ram: RamStatsSchema.optional(),
  "total-time": count("Milliseconds since the migration started (total once finished).").optional(),
  "expected-downtime": count("Estimated downtime in ms if it switched over now.").optional(),
  downtime: count("Measured guest pause at switchover, ms.").optional(),
  "setup-time": count("Milliseconds spent in setup.").optional(),
  "cpu-throttle-percentage": count("Current auto-converge throttle.").optional(),
  "error-desc": z.string().optional().meta({ description: "Why it failed." }),
  "postcopy-blocktime": count(
    "Destination, completed, postcopy-blocktime capability: total ms vCPUs waited for pages.",
  ).optional(),
  "postcopy-vcpu-blocktime": z.array(z.number()).optional().meta({
    description: "The same per vCPU (Ferry guests have one).",
  }),
  disk: z.object({
    transferred: count("Bytes of the drives sent (a block sent again counts again)."),
    remaining: count("Bytes of the drives still marked to send."),
    total: count("Bytes of the drives migrated (their sizes)."),
  }).optional().meta({
    id: "DiskStats",
    description: "Block migration (blk, inc or the block capability): the drives' counters.",
  }),
  "xbzrle-cache": z.object({
    "cache-size": count("XBZRLE cache size in bytes."),
    bytes: count("Bytes sent as XBZRLE deltas (frames included)."),
    pages: count("Pages sent as XBZRLE deltas."),
    "cache-miss": count("Resent pages not in the cache."),
    "cache-miss-rate": count("Misses per lookup over the last dirty-sync period."),
    overflow: count("Deltas longer than a page (sent whole instead)."),
  }).optional().meta({ description: "With the xbzrle capability." }),
  compression: z.object({
    pages: count("Pages sent compressed."),
    busy: count("Pages sent uncompressed because every thread was busy."),
    "busy-rate": count("busy / pages tried."),
    "compressed-size": count("Bytes of compressed page data."),
    "compression-rate": count("pages × page-size / compressed-size."),
  }).optional().meta({ description: "With the compress capability." }),
  "x-colo": z.object({
    checkpoints: count("Checkpoints taken (primary) or applied (secondary)."),
    "checkpoints-periodic": count("Of them, started by the x-checkpoint-delay timer."),
    "checkpoints-triggered": count(
      "Of them, started at once (x-checkpoint-delay changed, or the output compare: the " +
        "records differed, the secondary's came more than 3000 ms late, 1024 held).",
    ),
    "pause-last-ms": count("The primary's pause in the last checkpoint (ms)."),
    "pause-p50-ms": count("The primary's median pause over the last 1024 checkpoints (ms)."),
    "pause-p99-ms": count("The primary's 99th-percentile pause over the same (ms)."),
    "checkpoint-bytes-last": count("Bytes of the last checkpoint."),
    "checkpoint-bytes-total": count("Bytes of every checkpoint."),
    "records-compared": count("Primary: output record pairs compared (primary's, secondary's)."),
    "records-mismatched": count("Primary: of them, pairs whose bytes differed."),
    "records-held": count("Primary: its output records held now, waiting for the secondary's."),
  }).optional().meta({
    description: "Ferry: COLO's checkpoint counters (the seed's TODO), in status colo and after.",
  }),
  "x-convergence": z.object({
    verdict: z.enum(["estimating", "converging", "stalled", "not-converging"]),
    "eta-ms": z.number().optional().meta({ description: "Estimated ms to completion." }),
    ratio: z.number().optional().meta({ description: "Dirty rate / bandwidth." }),
    suggestion: z.string().optional(),
  }).optional().meta({
    id: "Convergence",
    description: "Ferry: will this precopy migration finish? From the measured dirty rate, " +
      "bandwidth and the RAM left after each sync (source, active only).",
  }),
  "x-progress": z.object({
    percent: count(
      "Share of guest RAM not left to send, (total − remaining) / total, in percent rounded " +
        "down to a tenth; 100 only once completed.",
    ),
    remaining: count(
      "Bytes of RAM left to send, what percent is computed from: ram.remaining, or right " +
        "after a dirty-log sync what the sync left (ram.remaining is refreshed after each " +
        "chunk sent).",
    ),
    state: z.enum(PROGRESS_STATES).meta({
      description: "While active, the x-convergence verdict (estimating until a bandwidth was " +
        "measured); otherwise the phase: switchover (pre-switchover, device), postcopy, " +
        "cancelling, completed.",
    }),
    "eta-ms": count(
      "Estimated ms to completion: converging precopy (x-convergence's), or postcopy-active " +
        "(what is left at the measured bandwidth). Absent otherwise.",
    ).optional(),
    "expected-downtime": count(
      "Estimated guest pause in ms if it switched over now: what is left at the measured " +
        "bandwidth. Absent until a bandwidth was measured (unlike QMP's expected-downtime, " +
        "which reports downtime-limit until then).",
    ).optional(),
    fits: z.enum(PROGRESS_FITS).optional().meta({
      description: "setup and active: fits (converging, and expected-downtime within " +
        "downtime-limit), too-long (over the limit, or stalled / not-converging), or " +
        "estimating (no bandwidth measured yet, or no verdict yet).",
    }),
  }).optional().meta({
    id: "Progress",
    description: "Ferry: progress, ETA and the switchover verdict from one formula, what " +
      "clients display (source; setup to completed).",
  }),
  "x-history": z.array(z.object({
    time: z.string(),
    status: z.string(),
    note: z.string().optional(),
    repeats: z.number().int().optional().meta({
      description: "The same action came again this many times (a policy repeats its last " +
        "action at every timeout), counted on this line instead of a line each.",
    }),
    last: z.string().optional().meta({ description: "When the last of those repeats came." }),
  })).optional().meta({ description: "Ferry: status changes and policy escalations, in order." }),
  "x-id": z.string().optional().meta({ description: "Ferry: the migration resource id." }),
  "x-side": z.enum(["source", "destination"]).optional().meta({ description: "Ferry: which end." }),
}).meta({ id: "MigrationInfo" });

/** `event: progress` data: the migration's MigrationInfo when the event was published. */
export const ProgressEventSchema = MigrationInfoSchema.extend({ time: eventTime }).meta({
  id: "ProgressEvent",
  description: "A MigrationInfo (as GET /migrations/{id} answers) and the event's time.",
});

/** QMP migrate arguments. */
export const MigrateRequestSchema = z.object({
  uri: z.string().min(1).max(4096).meta({
    description: "tcp:HOST:PORT, unix:PATH, exec:CMD or file:PATH",
    example: "tcp:127.0.0.1:4444",
  }),
  resume: z.boolean().optional().meta({ description: "Resume a paused postcopy migration." }),
  blk: z.boolean().optional().meta({
    description: "Block migration: the drives move with RAM (turns the block capability on " +
      "for this migration).",
  }),
  inc: z.boolean().optional().meta({
    description: "Incremental block migration: only the blocks written since the agent " +
      "started (block and block-incremental on for this migration).",
  }),
  detach: z.boolean().optional().meta({ description: "Ignored, as in QMP." }),
  "x-policy": z.object({
    "completion-timeout-per-gib": z.number().positive().max(86400).optional().meta({
      description: "Seconds per GiB of guest RAM before the completion timeout fires.",
    }),
    "progress-timeout": z.number().positive().max(86400).optional().meta({
      description: "Seconds without progress (RAM left reaching a new low) before it fires.",
    }),
    actions: z.array(z.enum(["auto-converge", "postcopy", "cancel"])).min(1).max(8).meta({
      description: "What to do, in order, each time a timeout fires (the last one repeats).",
      example: ["auto-converge", "postcopy", "cancel"],
    }),
  }).strict().optional().meta({
    id: "MigrationPolicy",
    description: "Ferry: timeouts enforced by the agent, each firing an escalation (an event " +
      "MIGRATION_POLICY and a line in the migration's x-history).",
  }),
}).strict().meta({ id: "MigrateRequest" });

/** A URI-only body (migrate-incoming, migrate-recover). */
export const UriRequestSchema = z.object({
  uri: z.string().min(1).max(4096).meta({ example: "tcp:127.0.0.1:4444" }),
}).strict().meta({ id: "UriRequest" });

/** `event: MIGRATION` data: the seed's MIGRATION event, plus the migration's id. */
export const MigrationEventSchema = z.object({
  status: z.enum(MIGRATION_STATUSES).meta({
    description: "The new status. As in the seed, every incoming start is announced with " +
      "`setup`, a migrate-recover's too, although the destination stays postcopy-paused.",
  }),
  side: z.enum(["source", "destination"]),
  id: z.string().meta({ description: "The migration resource id." }),
  time: eventTime,
}).meta({ id: "MigrationEvent" });

/** `event: MIGRATION_PASS` data. */
export const MigrationPassEventSchema = z.object({
  pass: z.number().int().meta({ description: "The dirty-sync count after this sync." }),
  time: eventTime,
}).meta({ id: "MigrationPassEvent" });

/** `event: MIGRATION_CONVERGENCE` data: an outgoing precopy's verdict changed. */
export const MigrationConvergenceEventSchema = z.object({
  id: z.string().meta({ description: "The migration resource id." }),
  verdict: z.enum(["estimating", "converging", "stalled", "not-converging"]),
  "eta-ms": z.number().optional().meta({ description: "Estimated ms to completion." }),
  ratio: z.number().optional().meta({ description: "Dirty rate / bandwidth." }),
  suggestion: z.string().optional(),
  time: eventTime,
}).meta({
  id: "MigrationConvergenceEvent",
  description: "Ferry: the migration's x-convergence verdict changed (published once per change).",
});

/** `event: MIGRATION_POLICY` data: the migration's x-policy fired. */
export const MigrationPolicyEventSchema = z.object({
  id: z.string().meta({ description: "The migration resource id." }),
  trigger: z.enum(["completion-timeout", "progress-timeout"]),
  action: z.enum(["auto-converge", "postcopy", "cancel"]),
  step: z.number().int().min(1).meta({ description: "Firings so far, this one included." }),
  note: z.string().meta({ description: "The line added to the migration's x-history." }),
  time: eventTime,
}).meta({
  id: "MigrationPolicyEvent",
  description: "Ferry: a timeout of the migration's x-policy fired and its action was taken.",
});

/** `POST /migrations?dry-run=true` when every check passes. */
export const DryRunSchema = z.object({
  "dry-run": z.literal(true),
  ok: z.literal(true),
}).meta({ id: "DryRunResult" });

/** A migration blocker. */
export const BlockerSchema = z.object({
  id: z.string(),
  reason: z.string().meta({ description: "Reported as the detail when migrate is refused." }),
}).meta({ id: "Blocker" });

/** `POST /blockers`. */
export const BlockerRequestSchema = z.object({
  reason: z.string().min(1).max(4096).meta({ example: "device foo does not support migration" }),
}).strict().meta({ id: "BlockerRequest" });

/** migration_global_dump. */
export const GlobalsSchema = z.object({
  "store-global-state": z.boolean(),
  "only-migratable": z.boolean(),
  "send-configuration": z.boolean(),
  "send-section-footer": z.boolean(),
  "decompress-error-check": z.boolean(),
}).meta({ id: "Globals" });
