/**
 * Ferry agent: parses the command line (cli.ts, see contract.md), builds the agent, serves
 * the API on TCP or a unix socket (over TLS with `--api-tls`), and shuts down cleanly on
 * SIGINT/SIGTERM.
 *
 * @module
 */
import { bootAgent, type BootedAgent } from "./boot.ts";
import { parseCommandLine, type StartOptions, UsageError } from "./cli.ts";
import { HelpRequested, USAGE } from "./cli_usage.ts";

function fail(message: string): never {
  console.error(`ferry: ${message}`);
  Deno.exit(1);
}

/** Starts an agent from `args`; resolves when it has shut down. */
export async function main(args: string[]): Promise<void> {
  let options: StartOptions;
  try {
    options = await parseCommandLine(args);
  } catch (e) {
    // --help and command lines it cannot start with: the usage text, exit status 2.
    if (e instanceof HelpRequested) {
      console.log(USAGE);
      Deno.exit(2);
    }
    if (e instanceof UsageError) {
      console.error(`ferry: ${e.message}\n\n${USAGE}`);
      Deno.exit(2);
    }
    fail((e as Error).message);
  }
  let booted: BootedAgent;
  try {
    booted = await bootAgent(options);
  } catch (e) {
    fail((e as Error).message);
  }
  // SIGINT/SIGTERM: the agent shuts down (boot.ts), exit 0. A second signal exits at once.
  let stopping = false;
  const stop = async () => {
    if (stopping) Deno.exit(130);
    stopping = true;
    await booted.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  await booted.server.finished;
}

if (import.meta.main) await main(Deno.args);
