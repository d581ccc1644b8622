/**
 * The layering rule: nothing under domain/ imports hono, @hono/*, or routes/ — the HTTP
 * layer depends on the domain, never the reverse. Walks every domain/**\/*.ts file's static
 * and dynamic imports and re-exports.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);
const DOMAIN = new URL("domain/", ROOT);

async function* tsFiles(dir: URL): AsyncGenerator<URL> {
  for await (const entry of Deno.readDir(dir)) {
    const url = new URL(entry.name + (entry.isDirectory ? "/" : ""), dir);
    if (entry.isDirectory) yield* tsFiles(url);
    else if (entry.name.endsWith(".ts")) yield url;
  }
}

/** Every module specifier a TypeScript source names (import/export ... from, import(), bare import). */
export function specifiers(source: string): string[] {
  const found: string[] = [];
  const patterns = [
    /\b(?:import|export)\s[^"';]*?\sfrom\s*["']([^"']+)["']/g,
    /\bimport\s*["']([^"']+)["']/g,
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
    /new URL\(\s*["']([^"']+\.ts)["']\s*,\s*import\.meta\.url\s*\)/g,
  ];
  for (const re of patterns) for (const m of source.matchAll(re)) found.push(m[1]);
  return found;
}

function forbidden(from: URL, spec: string): boolean {
  if (/^(npm:)?(hono|@hono\/)/.test(spec)) return true;
  if (!spec.startsWith(".")) return false;
  const target = new URL(spec, from);
  return target.href.startsWith(new URL("routes/", ROOT).href) ||
    !target.href.startsWith(ROOT.href);
}

Deno.test("the specifier scanner finds every import form", () => {
  const src = [
    'import { a } from "./a.ts";',
    'import type {\n  B,\n} from "../routes/b.ts";',
    'export { c } from "hono";',
    'import "./side.ts";',
    'const d = await import("@hono/zod-openapi");',
    'const w = new URL("./engine/w.ts", import.meta.url);',
  ].join("\n");
  assert.deepEqual(
    specifiers(src).sort(),
    [
      "../routes/b.ts",
      "./a.ts",
      "./engine/w.ts",
      "./side.ts",
      "@hono/zod-openapi",
      "hono",
    ].sort(),
  );
  const here = new URL("domain/x.ts", ROOT);
  assert.equal(forbidden(here, "../routes/b.ts"), true);
  assert.equal(forbidden(here, "hono/streaming"), true);
  assert.equal(forbidden(here, "./errors.ts"), false);
});

Deno.test("domain/ never imports hono or routes/", async () => {
  const offences: string[] = [];
  let files = 0;
  for await (const file of tsFiles(DOMAIN)) {
    files++;
    for (const spec of specifiers(await Deno.readTextFile(file))) {
      if (forbidden(file, spec)) {
        offences.push(`${file.pathname.slice(ROOT.pathname.length)} imports ${spec}`);
      }
    }
  }
  assert.ok(files >= 10, `walked ${files} files`);
  assert.deepEqual(offences, []);
});
