/**
 * Test helper for the README's copy-and-paste sections (tests/readme_*_test.ts): a section's
 * `sh` blocks by terminal number and the inline code of its prose, the substitutions a test
 * may make (this Deno for `npx -y deno@X`, free ports for 8080, 8081 and 4444), and a
 * "terminal": one bash running one block, its output kept.
 *
 * @module
 */
import assert from "node:assert/strict";
import { stopChild } from "../../harness/child_stop.ts";

/** The repository's root. */
export const ROOT = new URL("../../", import.meta.url);

/**
 * The README's section headed `## {title}`: its blocks by terminal number (each must start
 * with `# Terminal N`), and the inline code of its prose.
 */
export async function readmeSection(
  title: string,
): Promise<{ blocks: Map<number, string>; inline: string[] }> {
  const readme = await Deno.readTextFile(new URL("README.md", ROOT));
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README.md has a '## ${title}' section`);
  const end = readme.indexOf("\n## ", start + 1);
  const section = readme.slice(start, end < 0 ? undefined : end);
  const blocks = new Map<number, string>();
  for (const m of section.matchAll(/```sh\n([\s\S]*?)```/g)) {
    const label = /^# Terminal (\d+)\b/.exec(m[1]);
    assert.ok(label, `every block of '${title}' says which terminal it is for:\n${m[1]}`);
    assert.ok(!blocks.has(Number(label[1])), `two blocks for terminal ${label[1]}`);
    blocks.set(Number(label[1]), m[1]);
  }
  const prose = section.replaceAll(/```[\s\S]*?```/g, "");
  const inline = [...prose.matchAll(/`([^`\n]+)`/g)].map((m) => m[1]);
  return { blocks, inline };
}

/** Inline code that is a command to paste: those belong in a block, where they are run. */
export function isCommand(code: string): boolean {
  return /^(curl|npx|deno|bash|sh|\.\/)\s/.test(code);
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Free loopback ports standing for the README's 8080, 8081 and 4444. */
export function readmePorts(): Map<string, number> {
  return new Map([["8080", freePort()], ["8081", freePort()], ["4444", freePort()]]);
}

/**
 * A block as a test runs it: `npx -y deno@X` is this Deno (the README must pin this very
 * version), the README's ports are `ports`.
 */
export function asRun(block: string, ports: Map<string, number>): string {
  const pinned = /npx -y deno@(\d+\.\d+\.\d+)/.exec(block)?.[1];
  if (pinned !== undefined) {
    assert.equal(pinned, Deno.version.deno, "the README pins the Deno these tests run on");
  }
  return block
    .replaceAll(/npx -y deno@\d+\.\d+\.\d+/g, `'${Deno.execPath()}'`)
    .replaceAll(/\b(8080|8081|4444)\b/g, (p) => String(ports.get(p)));
}

/** A terminal: a bash running one block, its output kept. */
export interface Terminal {
  output(): string;
  status: Promise<Deno.CommandStatus>;
  stop(): Promise<void>;
}

/** Runs `script` in bash at the repository's root with `env` added. */
export function terminal(script: string, env: Record<string, string>): Terminal {
  const child = new Deno.Command("bash", {
    args: ["-c", script],
    cwd: ROOT,
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let text = "";
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) text += chunk;
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  return {
    output: () => text,
    status: child.status,
    async stop() {
      await stopChild(child, 5000);
      await drained;
    },
  };
}

/** Waits until `url` answers, or fails saying which terminal never came up. */
export async function waitUp(url: string, t: Terminal, what: string): Promise<void> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const r = await fetch(url);
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not yet */ }
    assert.ok(Date.now() < deadline, `${what} never answered ${url}:\n${t.output()}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}
