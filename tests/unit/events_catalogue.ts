/**
 * Every event the agent emits is in openapi.yaml with a data schema. The list of emitted
 * event names is read from the product's source (every `publish("NAME"` call), not kept by
 * hand, so an event added anywhere without a schema fails here; and every documented event
 * is still published somewhere, so the contract never promises a dead one.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";

const ROOT = new URL("../../", import.meta.url);
const PRODUCT_DIRS = ["domain", "routes", "adapters", "scripts"];

async function* sources(dir: URL): AsyncGenerator<URL> {
  for await (const e of Deno.readDir(dir)) {
    const url = new URL(e.name + (e.isDirectory ? "/" : ""), dir);
    if (e.isDirectory) yield* sources(url);
    else if (/\.(ts|js)$/.test(e.name)) yield url;
  }
}

/** Event name → the files that publish it, from `publish("NAME"` / `publish(\n "NAME"`. */
async function publishedEvents(): Promise<Map<string, string[]>> {
  const found = new Map<string, string[]>();
  const files = [new URL("main.ts", ROOT)];
  for (const d of PRODUCT_DIRS) {
    for await (const f of sources(new URL(`${d}/`, ROOT))) files.push(f);
  }
  for (const f of files) {
    const text = await Deno.readTextFile(f);
    for (const m of text.matchAll(/\.publish\(\s*["'`]([A-Za-z_][\w-]*)["'`]/g)) {
      const list = found.get(m[1]) ?? [];
      list.push(f.pathname.slice(ROOT.pathname.length));
      found.set(m[1], list);
    }
    // A publish whose name is not a literal would escape this check: there must be none.
    for (const m of text.matchAll(/\.publish\(\s*([^"'`\s)][^,)]*)/g)) {
      assert.fail(`${f.pathname}: publish(${m[1]}, …) has no literal event name`);
    }
  }
  return found;
}

Deno.test("events: every event the code publishes is documented in openapi.yaml with a schema", async () => {
  const doc = parse(await Deno.readTextFile(new URL("openapi.yaml", ROOT)));
  const documented: Record<string, { $ref: string }> = doc.paths["/events"].get["x-events"];
  const published = await publishedEvents();
  // The scan itself must see the seed's events, or it is looking in the wrong place.
  for (const name of ["MIGRATION", "MIGRATION_PASS", "progress"]) {
    assert.ok(published.has(name), `the source scan found no publish("${name}")`);
  }
  for (const [name, files] of published) {
    const schema = documented[name];
    assert.ok(schema, `event ${name} (published in ${files.join(", ")}) is not in openapi.yaml`);
    const id = schema.$ref.replace("#/components/schemas/", "");
    assert.ok(doc.components.schemas[id], `event ${name}: schema ${id} is missing`);
  }
  for (const name of Object.keys(documented)) {
    assert.ok(published.has(name), `openapi.yaml documents event ${name}, which nothing publishes`);
  }
});
