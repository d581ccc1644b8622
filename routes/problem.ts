/**
 * Errors as RFC 9457 problem+json: one table maps domain error codes to HTTP statuses;
 * zod validation failures become 400s naming the member, in QMP's words.
 *
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "@hono/zod-openapi";
import { DomainError, type ErrorClass, type ErrorCode, MigrationFailed } from "../domain/errors.ts";
import {
  PARAMETER_NAMES,
  type ParameterName,
  rangeError,
  SIZE_PARAMETER_NAMES,
  sizeTypeError,
} from "../domain/options.ts";
import { DomainErrors } from "../domain/preflight.ts";

/** The one table from domain error codes to HTTP statuses. */
export const STATUS_OF: Record<ErrorCode, ContentfulStatusCode> = {
  "invalid-value": 400,
  "incompatible": 400,
  "unsupported": 400,
  "active": 409,
  "wrong-state": 409,
  "blocked": 409,
  "disabled": 409,
  "not-found": 404,
  "stale": 412,
  "mismatch": 422,
  "internal": 500,
};

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Content",
  429: "Too Many Requests",
  500: "Internal Server Error",
  503: "Service Unavailable",
};

/** One problem of several (a dry run). */
export const ProblemItemSchema = z.object({
  detail: z.string().meta({ description: "What went wrong, in the seed's words." }),
  class: z.string().meta({ description: "QMP error class, e.g. GenericError." }),
}).meta({ id: "ProblemItem" });

/** The problem+json body schema. */
export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().meta({ description: "What went wrong, in the seed's words." }),
  class: z.string().meta({ description: "QMP error class, e.g. GenericError." }),
  errors: z.array(ProblemItemSchema).optional().meta({
    description: "Every problem found, in the seed's order (dry runs); `detail` joins them.",
  }),
  "x-id": z.string().optional().meta({
    description: "Ferry: a migrate that failed after it started (status `setup` → `failed`, as " +
      "in the seed) names the failed migration, also given as `Location`.",
  }),
}).meta({ id: "Problem" });

/** A problem+json response; `extra` members are added to the body, `headers` to the reply. */
export function problem(
  c: Context,
  status: ContentfulStatusCode,
  detail: string,
  errorClass: ErrorClass = "GenericError",
  extra: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Response {
  const body = {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    detail,
    class: errorClass,
    ...extra,
  };
  return c.body(JSON.stringify(body), status, {
    ...headers,
    "content-type": "application/problem+json",
  });
}

/**
 * Maps any thrown error to problem+json (DomainError by its code; anything else 500). A
 * migration that failed in `setup` is still an error to its caller, with where to find the
 * failed migration: `Location` and the `x-id` member.
 */
export function errorResponse(c: Context, e: unknown): Response {
  if (e instanceof MigrationFailed) {
    return problem(c, STATUS_OF[e.code], e.message, e.errorClass, { "x-id": e.migrationId }, {
      Location: `/migrations/${e.migrationId}`,
    });
  }
  if (e instanceof DomainErrors) {
    const errors = e.errors.map((x) => ({ detail: x.message, class: x.errorClass }));
    return problem(c, STATUS_OF[e.code], e.message, e.errorClass, { errors });
  }
  if (e instanceof DomainError) return problem(c, STATUS_OF[e.code], e.message, e.errorClass);
  console.error(e);
  return problem(c, 500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

const TYPE_NAMES: Record<string, string> = { int: "integer", number: "number" };

/** QMP-style text for one zod issue. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const name = issue.path.map(String).join(".");
  if (name === "" && issue.code === "invalid_type") {
    return `Invalid request body: expected a JSON ${issue.expected}`;
  }
  if ((SIZE_PARAMETER_NAMES as string[]).includes(name)) return sizeTypeError(name);
  switch (issue.code) {
    case "unrecognized_keys":
      return `Parameter '${issue.keys[0]}' is unexpected`;
    case "invalid_type":
      // zod leaves `input` out of issues unless asked; its message names what it received.
      return issue.input === undefined && /received undefined$/.test(issue.message)
        ? `Parameter '${name}' is missing`
        : `Invalid parameter type for '${name}', expected: ${
          TYPE_NAMES[issue.expected] ?? issue.expected
        }`;
    case "too_big":
    case "too_small":
      if ((PARAMETER_NAMES as string[]).includes(name)) return rangeError(name as ParameterName);
      return `Parameter '${name}' expects ${
        issue.origin === "string" ? "a string of length" : "a value"
      } ${issue.code === "too_big" ? "at most" : "at least"} ${
        String(issue.code === "too_big" ? issue.maximum : issue.minimum)
      }`;
    case "invalid_value":
      return `Parameter '${name}' expects one of ${
        issue.values.map((v) => `'${String(v)}'`).join(", ")
      }`;
    default:
      return name ? `Parameter '${name}': ${issue.message}` : issue.message;
  }
}

/** The zod-openapi defaultHook: a failed validation is a 400 problem. */
export function validationHook(
  result: { success: boolean; error?: z.ZodError },
  c: Context,
): Response | undefined {
  if (result.success) return undefined;
  const issue = result.error!.issues[0];
  return problem(c, 400, issue ? describeIssue(issue) : "Invalid request");
}

type ProblemResponses = Record<
  number,
  { description: string; content: Record<string, { schema: typeof ProblemSchema }> }
>;

/**
 * OpenAPI response entries for problem statuses; 401 (with `--api-token`) and 403 (a
 * foreign Host or Origin, routes/host_guard.ts) are always listed.
 */
export function problems(...statuses: number[]): ProblemResponses {
  return Object.fromEntries(
    [...new Set([401, 403, ...statuses])].sort().map((s) => [s, {
      description: TITLES[s] ?? "Error",
      content: { "application/problem+json": { schema: ProblemSchema } },
    }]),
  );
}

/** The problems any request with a JSON body can get besides its own. */
export const BODY_PROBLEMS = [400, 413, 415] as const;
