/**
 * The contract, served: `/openapi.json`, `/openapi.yaml`, and `/docs` (Swagger UI) whose
 * JavaScript and CSS come from the `swagger-ui-dist` package through this agent, never
 * from a CDN. `swagger-ui-dist` loads its whole UI bundle when imported (about half a second),
 * so it is imported on the first asset request, not when an agent starts.
 *
 * @module
 */
import { swaggerUI } from "@hono/swagger-ui";
import { Hono } from "hono";

/** Where the Swagger UI assets are served. */
export const ASSET_BASE = "/docs";

const ASSETS: Record<string, string> = {
  "swagger-ui.css": "text/css; charset=utf-8",
  "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
};

/**
 * The OpenAPI document as committed in `openapi.yaml`. The YAML library is imported on first
 * use: an agent that is never asked for YAML does not load it (it was ~7% of start-up).
 */
export async function documentYaml(document: unknown): Promise<string> {
  const { stringify } = await import("yaml");
  return stringify(document, { lineWidth: 0, aliasDuplicateObjects: false });
}

/**
 * The document as this agent serves it: its one server is the agent answering (the origin
 * the request came to), so `/docs`'s "Try it out" talks to this agent, whatever its address.
 * The committed `openapi.yaml` keeps the default `--listen` address.
 */
export function servedDocument(document: unknown, origin: string): Record<string, unknown> {
  return {
    ...document as Record<string, unknown>,
    servers: [{ url: origin, description: "This agent (the one serving this document)" }],
  };
}

/** The docs sub-app for `document` (built once, on first use). */
export function docRoutes(document: () => unknown): Hono {
  const app = new Hono();
  // The YAML text for the last origin asked (an agent is reached under one or two names).
  let yamlText: { origin: string; text: string } | undefined;
  const cache = new Map<string, Uint8Array>();
  app.get("/openapi.json", (c) => c.json(servedDocument(document(), new URL(c.req.url).origin)));
  app.get("/openapi.yaml", async (c) => {
    const origin = new URL(c.req.url).origin;
    if (yamlText?.origin !== origin) {
      yamlText = { origin, text: await documentYaml(servedDocument(document(), origin)) };
    }
    return c.body(yamlText.text, 200, { "content-type": "application/yaml; charset=utf-8" });
  });
  // The middleware puts assets at `${baseUrl}/swagger-ui-dist/<file>`.
  app.get("/docs", swaggerUI({ url: "/openapi.json", baseUrl: ASSET_BASE, title: "Ferry API" }));
  app.get(`${ASSET_BASE}/swagger-ui-dist/:file`, async (c) => {
    const file = c.req.param("file");
    const type = ASSETS[file];
    if (!type) return c.notFound();
    let bytes = cache.get(file);
    if (!bytes) {
      const { getAbsoluteFSPath } = await import("swagger-ui-dist");
      bytes = await Deno.readFile(`${getAbsoluteFSPath()}/${file}`);
      cache.set(file, bytes);
    }
    return c.body(bytes as Uint8Array<ArrayBuffer>, 200, {
      "content-type": type,
      "cache-control": "public, max-age=86400",
    });
  });
  return app;
}
