/**
 * `exec:` by choice: an `exec:CMD` migration URI runs CMD through the shell as the agent's
 * user, so whoever can reach the API could run any command. An agent takes `exec:` URIs
 * (outgoing, `--incoming`, migrate-incoming, migrate-recover, resume) only when started
 * with `--allow-exec`; otherwise the request is refused before anything changes.
 *
 * @module
 */
import { parseMigrationUri, type UriDirection } from "../adapters/channels/uri.ts";
import { DomainError } from "./errors.ts";

/** The refusal's text; it names the flag that permits `exec:`. */
export const EXEC_DISABLED = "exec: migrations run shell commands and are disabled on this " +
  "agent; start it with --allow-exec to permit them";

/**
 * The `disabled` error when `uri` is an `exec:` URI and `allowExec` is off; null otherwise
 * (also for a URI that does not parse: its own check reports that).
 */
export function execProblem(
  uri: string,
  direction: UriDirection,
  allowExec: boolean,
): DomainError | null {
  if (allowExec) return null;
  try {
    if (parseMigrationUri(uri, direction).kind !== "exec") return null;
  } catch {
    return null;
  }
  return new DomainError("disabled", EXEC_DISABLED);
}

/** Throws {@link execProblem}'s error, if any. */
export function requireExecAllowed(
  uri: string,
  direction: UriDirection,
  allowExec: boolean,
): void {
  const problem = execProblem(uri, direction, allowExec);
  if (problem) throw problem;
}
