/**
 * Errors as RFC 9457 problem+json: one table maps domain error codes to HTTP statuses;
 * zod validation failures become 400s naming the member, in QMP's words.
 *
 * @module
 */
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { z } from "@hono/zod-openapi";
import { DomainError, type ErrorClass, type ErrorCode } from "../domain/errors.ts";
import { PARAMETER_NAMES, type ParameterName, rangeError } from "../domain/options.ts";

/** The one table from domain error codes to HTTP statuses. */
export const STATUS_OF: Record<ErrorCode, ContentfulStatusCode> = {
  "invalid-value": 400,
  "incompatible": 400,
  "unsupported": 400,
  "active": 409,
  "wrong-state": 409,
  "blocked": 409,
  "not-found": 404,
  "stale": 412,
  "internal": 500,
};

const TITLES: Record<number, string> = {
  400: "Bad Request",
  401: "Unauthorized",
  404: "Not Found",
  409: "Conflict",
  412: "Precondition Failed",
  413: "Content Too Large",
  500: "Internal Server Error",
};

/** The problem+json body schema. */
export const ProblemSchema = z.object({
  type: z.string(),
  title: z.string(),
  status: z.number().int(),
  detail: z.string().meta({ description: "What went wrong, in the seed's words." }),
  class: z.string().meta({ description: "QMP error class, e.g. GenericError." }),
}).meta({ id: "Problem" });

/** A problem+json response. */
export function problem(
  c: Context,
  status: ContentfulStatusCode,
  detail: string,
  errorClass: ErrorClass = "GenericError",
): Response {
  const body = {
    type: "about:blank",
    title: TITLES[status] ?? "Error",
    status,
    detail,
    class: errorClass,
  };
  return c.body(JSON.stringify(body), status, { "content-type": "application/problem+json" });
}

/** Maps any thrown error to problem+json (DomainError by its code; anything else 500). */
export function errorResponse(c: Context, e: unknown): Response {
  if (e instanceof DomainError) return problem(c, STATUS_OF[e.code], e.message, e.errorClass);
  console.error(e);
  return problem(c, 500, `internal error: ${e instanceof Error ? e.message : String(e)}`);
}

/** QMP-style text for the first zod issue. */
export function describeIssue(issue: z.core.$ZodIssue): string {
  const name = issue.path.map(String).join(".");
  switch (issue.code) {
    case "unrecognized_keys":
      return `Parameter '${issue.keys[0]}' is unexpected`;
    case "invalid_type":
      return issue.input === undefined
        ? `Parameter '${name}' is missing`
        : `Invalid parameter type for '${name}', expected: ${issue.expected}`;
    case "too_big":
    case "too_small":
      if ((PARAMETER_NAMES as string[]).includes(name)) return rangeError(name as ParameterName);
      return `Parameter '${name}' expects a value ${issue.code === "too_big" ? "at most" : "at least"} ${
        String(issue.code === "too_big" ? issue.maximum : issue.minimum)
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

/** OpenAPI response entries for problem statuses. */
export function problems(...statuses: number[]): Record<number, { description: string; content: Record<string, { schema: typeof ProblemSchema }> }> {
  return Object.fromEntries(
    statuses.map((s) => [s, {
      description: TITLES[s] ?? "Error",
      content: { "application/problem+json": { schema: ProblemSchema } },
    }]),
  );
}
