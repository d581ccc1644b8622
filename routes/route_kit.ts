/**
 * What every route module shares: the lazy agent reference (so the OpenAPI document can
 * be built without a live guest) and the JSON content helper.
 *
 * @module
 */
import type { Agent } from "../domain/agent.ts";

/** Returns the agent a handler acts on; called only when a request is handled. */
export type AgentRef = () => Agent;

/** An OpenAPI `content` entry for `application/json`. */
export function json<T>(schema: T): { content: { "application/json": { schema: T } } } {
  return { content: { "application/json": { schema } } };
}
