/**
 * `/drives/{id}/bitmaps` (block-dirty-bitmap-add / -remove): a drive's named dirty bitmaps,
 * each the blocks the guest wrote since it was made. `GET /drives` lists them with their
 * counts (routes/drives.ts).
 *
 * @module
 */
import { createRoute, OpenAPIHono, z } from "@hono/zod-openapi";
import { BODY_PROBLEMS, problems, validationHook } from "./problem.ts";
import { type AgentRef, json } from "./route_kit.ts";

const tags = ["machine"];

/** One dirty bitmap (QEMU's BlockDirtyInfo: name, count, granularity). */
export const BitmapSchema = z.object({
  name: z.string().meta({ description: "The bitmap's name (unique per drive)." }),
  count: z.number().meta({
    description: "Bytes written since the bitmap was made (whole blocks, within the drive).",
  }),
  granularity: z.number().meta({ description: "Bytes one mark stands for (65536)." }),
}).meta({ id: "DirtyBitmap" });

const BitmapRequestSchema = z.object({
  name: z.string().min(1).max(64).meta({
    description: "1 to 64 printable ASCII characters without spaces.",
    example: "backup-0",
  }),
}).meta({ id: "DirtyBitmapRequest" });

const DriveParam = z.object({ id: z.string().max(255) });

const addBitmap = createRoute({
  method: "post",
  path: "/drives/{id}/bitmaps",
  operationId: "blockDirtyBitmapAdd",
  tags,
  summary: "block-dirty-bitmap-add",
  description: "A new, empty bitmap of the drive: from now on it marks every block the guest " +
    "writes. With the `dirty-bitmaps` capability a block migration carries it to the " +
    "destination, where it keeps counting. 409 when the name exists (or the drive has 8).",
  request: { params: DriveParam, body: { required: true, ...json(BitmapRequestSchema) } },
  responses: {
    201: {
      description: "Made",
      headers: z.object({
        Location: z.string().meta({ description: "/drives/{id}/bitmaps/{name}" }),
      }),
      ...json(BitmapSchema),
    },
    ...problems(...BODY_PROBLEMS, 404, 409),
  },
});

const removeBitmap = createRoute({
  method: "delete",
  path: "/drives/{id}/bitmaps/{name}",
  operationId: "blockDirtyBitmapRemove",
  tags,
  summary: "block-dirty-bitmap-remove",
  request: { params: z.object({ id: z.string().max(255), name: z.string().max(64) }) },
  responses: { 204: { description: "Removed" }, ...problems(400, 404) },
});

/** The dirty bitmaps sub-app. */
export function driveBitmapRoutes(agent: AgentRef): OpenAPIHono {
  const app = new OpenAPIHono({ defaultHook: validationHook });
  app.openapi(addBitmap, (c) => {
    const { id } = c.req.valid("param");
    const bitmap = agent().bitmaps.add(id, c.req.valid("json").name);
    const location = `/drives/${encodeURIComponent(id)}/bitmaps/${encodeURIComponent(bitmap.name)}`;
    return c.json(bitmap, 201, { Location: location });
  });
  app.openapi(removeBitmap, (c) => {
    const { id, name } = c.req.valid("param");
    agent().bitmaps.remove(id, name);
    return c.body(null, 204);
  });
  return app;
}
