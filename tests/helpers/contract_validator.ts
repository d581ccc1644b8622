/**
 * Test helper: validates bodies against the schemas of the committed openapi.yaml with
 * Ajv (JSON Schema 2020-12, as OpenAPI 3.1 uses). Objects are closed for the check (an
 * undocumented member is a mismatch), and an openapi-fetch middleware validates every
 * response's status, required headers and body against its operation.
 *
 * @module
 */
import { Ajv2020 } from "ajv/dist/2020.js";
import type { Middleware } from "openapi-fetch";
import { parse } from "yaml";

// deno-lint-ignore no-explicit-any
type Json = any;

const DOC_ID = "ferry-openapi";

function closeObjects(node: Json): void {
  if (Array.isArray(node)) return node.forEach(closeObjects);
  if (!node || typeof node !== "object") return;
  if (node.type === "object" && node.properties && node.additionalProperties === undefined) {
    node.additionalProperties = false;
  }
  for (const v of Object.values(node)) closeObjects(v);
}

const escape = (s: string) => s.replaceAll("~", "~0").replaceAll("/", "~1");

/** Validates against openapi.yaml; counts what it checked. */
export class ContractValidator {
  readonly doc: Json;
  readonly #ajv: InstanceType<typeof Ajv2020>;
  checked = 0;

  /** Loads the committed openapi.yaml. */
  constructor(yamlText: string) {
    this.doc = parse(yamlText);
    const closed = structuredClone(this.doc);
    closeObjects(closed.components);
    closeObjects(closed.paths);
    this.#ajv = new Ajv2020({ strict: false, allErrors: true });
    this.#ajv.addSchema(closed, DOC_ID);
  }

  /** Throws unless `value` matches the schema at `pointer` (a JSON pointer into the document). */
  assertMatches(pointer: string, value: unknown, what: string): void {
    const validate = this.#ajv.getSchema(`${DOC_ID}#${pointer}`);
    if (!validate) throw new Error(`no schema at ${pointer}`);
    if (!validate(value)) {
      throw new Error(
        `${what} does not match ${pointer}: ${this.#ajv.errorsText(validate.errors)}\n${
          JSON.stringify(value)
        }`,
      );
    }
    this.checked++;
  }

  /** Throws unless `data` matches the component schema `name`. */
  assertComponent(name: string, data: unknown, what: string): void {
    this.assertMatches(`/components/schemas/${name}`, data, what);
  }

  /** The openapi-fetch middleware validating every response. */
  middleware(): Middleware {
    return {
      onResponse: async ({ request, response, schemaPath }) => {
        const method = request.method.toLowerCase();
        const what = `${request.method} ${new URL(request.url).pathname} -> ${response.status}`;
        const op = this.doc.paths[schemaPath]?.[method];
        if (!op) throw new Error(`${what}: no such operation in openapi.yaml`);
        const res = op.responses[String(response.status)];
        if (!res) throw new Error(`${what}: status not documented`);
        for (const [name, h] of Object.entries(res.headers ?? {}) as [string, Json][]) {
          if (h.required && !response.headers.has(name)) {
            throw new Error(`${what}: no ${name} header`);
          }
        }
        const type = response.headers.get("content-type")?.split(";")[0].trim() ?? "";
        if (!res.content) {
          if ((await response.clone().text()) !== "") throw new Error(`${what}: undocumented body`);
          this.checked++;
          return undefined;
        }
        if (!res.content[type]) throw new Error(`${what}: content-type ${type} not documented`);
        const pointer = `/paths/${
          escape(schemaPath)
        }/${method}/responses/${response.status}/content/${escape(type)}/schema`;
        this.assertMatches(pointer, await response.clone().json(), what);
        return undefined;
      },
    };
  }
}
