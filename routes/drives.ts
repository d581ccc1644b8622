/**
 * `/drives` (query-block, in Ferry's terms): the machine's drives — id, image file, size,
 * whether active, and their dirty bitmaps (made and removed in routes/drive_bitmaps.ts).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";
import { BitmapSchema } from "./drive_bitmaps.ts";

/** One drive (`--drive id=ID,file=PATH,size=SIZE`). */
export const DriveSchema = z.object({
  id: z.string().meta({ description: "The drive's id." }),
  file: z.string().meta({ description: "Its raw image file." }),
  size: z.number().meta({ description: "Its size in bytes (whole 64 KiB blocks)." }),
  active: z.boolean().meta({
    description: "QEMU's `active`: this agent's guest owns the image (false on a destination " +
      "until its guest arrives, or until `cont` with late-block-activate; false on a source " +
      "after the switchover).",
  }),
  "dirty-bitmaps": z.array(BitmapSchema).meta({
    description: "Its named dirty bitmaps (POST /drives/{id}/bitmaps), with their counts.",
  }),
}).meta({ id: "Drive" });

const listDrives = createRoute({
  method: "get",
  path: "/drives",
  operationId: "queryBlock",
  tags: ["machine"],
  summary: "query-block: the machine's drives",
  description: "The drives given with `--drive`, in the order given. Block migration " +
    "(`blk`, `inc`, the `block` capability) moves them with RAM.",
  responses: { 200: { description: "Drives", ...json(z.array(DriveSchema)) }, ...problems() },
});

/** The drives sub-app. */
export function driveRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(listDrives, (c) => c.json(agent().drives(), 200));
  return app;
}
