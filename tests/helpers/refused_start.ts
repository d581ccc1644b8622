/**
 * Test helper: runs `main.ts` with arguments it must refuse, and reports how it ended. If
 * the agent says it is listening after all, it is killed at once (a refused start must
 * never serve, least of all on a non-loopback address) and the helper says so.
 *
 * @module
 */

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

/** How a refused start ended. */
export interface RefusedStart {
  code: number;
  stderr: string;
  /** True when it printed its "listening" line (and was killed). */
  listened: boolean;
}

/**
 * Runs `main.ts args` with `env` added, through `wrap` when given (e.g. `ip netns exec NS`);
 * resolves when it exits (within `timeoutMs`).
 */
export async function refusedStart(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
  wrap: string[] = [],
): Promise<RefusedStart> {
  const command = [...wrap, Deno.execPath(), "run", "-A", MAIN, ...args];
  const child = new Deno.Command(command[0], {
    args: command.slice(1),
    env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let stderr = "";
  let listened = false;
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  for await (const text of child.stderr.pipeThrough(new TextDecoderStream())) {
    stderr += text;
    if (!listened && stderr.includes('"msg":"listening"')) {
      listened = true;
      child.kill("SIGKILL");
    }
  }
  const status = await child.status;
  clearTimeout(timer);
  if (!status.success && status.signal === "SIGKILL" && !listened) {
    throw new Error(`main.ts ${args.join(" ")} did not exit within ${timeoutMs} ms: ${stderr}`);
  }
  return { code: status.code, stderr, listened };
}
