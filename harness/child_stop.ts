/**
 * Stops a child process as a user would — SIGTERM, then SIGKILL if it has not
 * exited after a grace period — and waits for it to end.
 *
 * @module
 */

/** Sends SIGTERM to `child`, SIGKILL after `graceMs` if still running; resolves when it ended. */
export async function stopChild(child: Deno.ChildProcess, graceMs: number): Promise<void> {
  try {
    child.kill("SIGTERM");
  } catch { /* already gone */ }
  const t = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch { /* gone */ }
  }, graceMs);
  await child.status;
  clearTimeout(t);
}
