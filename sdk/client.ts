/**
 * The typed Ferry API client: `openapi-fetch` over the types that `deno task openapi`
 * generates from openapi.yaml (`sdk/ferry_api.d.ts`), so every path, body and answer is
 * checked against the contract at compile time. `deno task ctl`, the bench and the tests
 * use it.
 *
 * @module
 */
import createClient, { type Client, type Middleware } from "openapi-fetch";
import type { components, paths } from "./ferry_api.d.ts";

export type { components, paths };

/** A typed client of one agent. */
export type FerryClient = Client<paths>;

/** QMP MigrationInfo as the agent's OpenAPI document describes it. */
export type MigrationInfo = components["schemas"]["MigrationInfo"];

/** How to reach an agent. */
export interface FerryClientOptions {
  /** The agent's base URL, e.g. `http://127.0.0.1:8080` (a trailing slash is dropped). */
  baseUrl: string;
  /** The agent's `--api-token`, sent as a bearer token when given. */
  token?: string;
  /** openapi-fetch middleware (e.g. response validation in the tests). */
  middleware?: Middleware[];
  /** The fetch to use (e.g. one with a Deno.HttpClient for the API's TLS). */
  fetch?: (request: Request) => Promise<Response>;
}

/** A typed client of the agent at `options.baseUrl`. */
export function ferryClient(options: FerryClientOptions): FerryClient {
  const client = createClient<paths>({
    baseUrl: options.baseUrl.replace(/\/+$/, ""),
    headers: options.token ? { authorization: `Bearer ${options.token}` } : {},
    ...(options.fetch ? { fetch: options.fetch } : {}),
  });
  for (const m of options.middleware ?? []) client.use(m);
  return client;
}
