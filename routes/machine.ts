/**
 * `/machine`: the guest's runstate and RAM layout, stop/cont, and the digest test aid
 * (a full pass over RAM: one at a time through the `ramPass` gate).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { ExclusiveGate, RAM_PASS_QUEUE } from "./limits.ts";
import { problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { RUN_STATES } from "../domain/runstates.ts";
import { DriveSchema } from "./drives.ts";
const tags = ["machine"];

const RunstateSchema = z.enum(RUN_STATES);

const MachineSchema = z.object({
  runstate: RunstateSchema,
  "ram-size": z.number(),
  "page-size": z.number(),
  blocks: z.array(z.object({
    name: z.string(),
    size: z.number().meta({ description: "The block's size: its maximum (`--ram`)." }),
    used: z.number().meta({
      description: "Bytes in use (QEMU's used_length): a WebAssembly guest's memory starts at " +
        "its declared size and grows with memory.grow up to size; other blocks: size.",
    }),
  })),
  workload: z.object({
    workload: z.string(),
    booted: z.boolean(),
    start: z.number(),
    end: z.number(),
    cursor: z.number(),
    passes: z.number(),
    "pages-written": z.number(),
    rate: z.number(),
    hot: z.number(),
    parked: z.boolean(),
  }).meta({ description: "The workload and the vCPU's registers." }),
  "cpu-throttle-percentage": z.number(),
  "x-ram-backing": z.object({
    "huge-pages": z.enum(["on", "off", "auto"]).meta({
      description: "`--huge-pages` (or FERRY_HUGE_PAGES) as given; default auto.",
    }),
    "page-size": z.number().meta({
      description: "The page size asked of the kernel for guest RAM: 2097152 (every block's " +
        "2 MiB-aligned part advised MADV_HUGEPAGE) or 4096 (advised MADV_NOHUGEPAGE).",
    }),
    thp: z.enum(["always", "madvise", "never"]).nullable().meta({
      description: "The kernel's transparent huge page mode; null when it cannot be read.",
    }),
    reason: z.string().meta({ description: "Why this page size." }),
    "advised-bytes": z.number().meta({ description: "Bytes of RAM advised MADV_HUGEPAGE." }),
    "huge-page-bytes": z.number().nullable().meta({
      description: "Bytes of RAM backed by huge pages now: AnonHugePages of the memory " +
        "mappings lying wholly inside the RAM buffers in /proc/self/smaps (read at most once a " +
        "second); 0 when RAM was advised MADV_NOHUGEPAGE; null when smaps cannot be read.",
    }),
    probe: z.object({
      "4k-gbps": z.number(),
      "huge-gbps": z.number(),
      "measured-at": z.string(),
      cached: z.boolean().meta({ description: "Read from this boot's cache file." }),
    }).nullable().meta({
      description: "`auto`'s measurement: first socket copies of freshly touched memory on " +
        "4 KiB pages and on huge pages, GB/s.",
    }),
  }).meta({ description: "Which pages back guest RAM (beyond QEMU's query-status)." }),
  drives: z.array(DriveSchema).meta({ description: "The drives (`--drive`), as GET /drives." }),
}).meta({ id: "Machine" });

const DigestSchema = z.object({
  "x-taken": z.enum(["arrival", "now"]).optional().meta({
    description: "Which RAM the block digests describe: as it arrived, or now.",
  }),
  blocks: z.array(z.object({
    name: z.string(),
    size: z.number(),
    used: z.number().meta({ description: "The bytes hashed: the block's used part." }),
    sha256: z.string(),
  })),
  "x-increment-check": z.object({
    ok: z.boolean(),
    steps: z.number(),
    start: z.number(),
    end: z.number(),
  }).optional().meta({ description: "migration-test's check, for the increment workload." }),
}).meta({ id: "MachineDigest" });

const RunstateReply = z.object({ runstate: RunstateSchema }).meta({ id: "Runstate" });

/** The machine sub-app; `ramPass` runs the digests one at a time. */
export function machineRoutes(
  agent: AgentRef,
  ramPass: ExclusiveGate = new ExclusiveGate(RAM_PASS_QUEUE),
): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.use("/machine/digest", ramPass.middleware("A RAM digest"));
  app.openapi(
    createRoute({
      method: "get",
      path: "/machine",
      operationId: "queryStatus",
      tags,
      summary: "query-status and the RAM layout",
      responses: { 200: { description: "The guest", ...json(MachineSchema) }, ...problems() },
    }),
    (c) => c.json(agent().machine.info(), 200),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/machine/stop",
      operationId: "stop",
      tags,
      summary: "stop",
      responses: { 202: { description: "Stopped", ...json(RunstateReply) }, ...problems(409, 415) },
    }),
    async (c) => c.json({ runstate: await agent().stopGuest() }, 202),
  );
  app.openapi(
    createRoute({
      method: "post",
      path: "/machine/cont",
      operationId: "cont",
      tags,
      summary: "cont",
      responses: { 202: { description: "Running", ...json(RunstateReply) }, ...problems(409, 415) },
    }),
    (c) => c.json({ runstate: agent().contGuest() }, 202),
  );
  app.openapi(
    createRoute({
      method: "get",
      path: "/machine/digest",
      operationId: "machineDigest",
      tags,
      summary: "SHA-256 of every RAM block (test aid)",
      description: "By default, on a destination whose guest arrived by migration, the RAM as it " +
        "arrived (measured by a copy-on-first-write snapshot while the guest runs on), so it can " +
        "be compared with the stopped source; otherwise, and with `at=now`, the RAM now. " +
        "`x-increment-check` always looks at the RAM now. Digests run one at a time; " +
        `up to ${RAM_PASS_QUEUE} more wait their turn, and beyond that the answer is 429 with ` +
        "Retry-After.",
      request: {
        query: z.object({
          at: z.enum(["auto", "now"]).optional().meta({
            description: "`now`: hash the RAM as it is now.",
          }),
        }),
      },
      responses: {
        200: { description: "Digests", ...json(DigestSchema) },
        ...problems(400),
        429: {
          ...problems(429)[429],
          headers: z.object({
            "Retry-After": z.string().meta({
              description: "Seconds until a retry likely finds room (from the last digest's time).",
            }),
          }),
        },
      },
    }),
    async (c) => c.json(await agent().machine.digest(c.req.valid("query").at ?? "auto"), 200),
  );
  return app;
}
