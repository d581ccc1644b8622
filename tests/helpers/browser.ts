/**
 * Test helper: finds a Chromium for the browser tests without any install step.
 *
 * In order: `FERRY_CHROMIUM` (a path, or `system`), else the Chromium that
 * `npm:@sparticuz/chromium` ships (pinned in deno.lock: the same browser on every machine, and
 * a headless shell that costs the suite a third of the CPU a full system browser does),
 * else, when that cannot be unpacked, a system Chromium (Debian's `/usr/bin/chromium` and the
 * usual names). The package's Chromium is unpacked once into `~/.cache/ferry/` under a file lock so that test files
 * running in parallel never see a half-written binary. The package unpacks into the OS temp
 * dir by design; a child process with TMPDIR pointed at the cache directory does it, so
 * nothing lands in /tmp and this process's environment never changes.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { ferryCacheDir } from "../../adapters/cache_dir.ts";

/** How to launch the browser that was found. */
export interface FoundBrowser {
  /** The executable. */
  executablePath: string;
  /** Command-line flags for it (headless, no sandbox, no background networking). */
  args: string[];
  /** Extra environment (fonts for the packaged build). */
  env: Record<string, string>;
  /** Where it came from, for messages. */
  source: "FERRY_CHROMIUM" | "system" | "npm:@sparticuz/chromium";
}

/** Flags every launch gets: nothing reaches out to the network, no first-run UI. */
const QUIET_FLAGS = [
  "--no-sandbox",
  "--disable-background-networking",
  "--disable-quic",
  "--no-first-run",
  "--disable-component-update",
  "--disable-sync",
];

const SYSTEM_PATHS = [
  "/usr/bin/chromium",
  "/usr/bin/chromium-browser",
  "/usr/bin/google-chrome",
  "/usr/bin/google-chrome-stable",
];

/** The package's flags that weaken the page's security: the tests must see the real rules. */
const UNSAFE_FLAG = /disable-web-security|allow-running-insecure|site-isolation|IsolateOrigins/;

/**
 * The package's flags that draw with GL in software (SwiftShader): the dashboard needs no GL,
 * and compositing through it cost a third more CPU than the system browser's suite run.
 */
const SOFTWARE_GL_FLAG = /use-gl|use-angle|swiftshader|ignore-gpu-blocklist|in-process-gpu/;

const PACKAGE_VERSION = "153.0.0";

function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

/**
 * Unpacks the packaged Chromium into `dir` (once; later calls find it there) and returns its
 * executable and flags.
 */
async function packaged(dir: string): Promise<FoundBrowser> {
  const exe = join(dir, "chromium");
  const done = join(dir, ".unpacked");
  const fontsConf = join(dir, "fonts.conf");
  const mod = await import("@sparticuz/chromium");
  const chromium = mod.default;
  if (!isFile(done)) {
    await Deno.mkdir(dirname(dir), { recursive: true });
    const lock = await Deno.open(`${dir}.lock`, { create: true, write: true });
    try {
      await lock.lock(true);
      if (!isFile(done)) {
        await Deno.remove(dir, { recursive: true }).catch(() => {});
        await Deno.mkdir(dir, { recursive: true });
        const out = await new Deno.Command(Deno.execPath(), {
          args: ["run", "-A", new URL("./unpack_chromium.ts", import.meta.url).pathname],
          env: { TMPDIR: dir },
          stdout: "piped",
          stderr: "piped",
        }).output();
        const path = new TextDecoder().decode(out.stdout).trim().split("\n").at(-1);
        if (!out.success || path !== exe) {
          const why = new TextDecoder().decode(out.stderr).trim().split("\n").at(-1);
          throw new Error(`unpacking gave '${path ?? ""}' (${why || `exit ${out.code}`})`);
        }
        // The package's fonts.conf names AWS Lambda's paths: the system's fonts plus the
        // package's own, with a cache of our own.
        await Deno.writeTextFile(
          fontsConf,
          `<?xml version="1.0"?>\n<!DOCTYPE fontconfig SYSTEM "fonts.dtd">\n<fontconfig>\n` +
            `  <include ignore_missing="yes">/etc/fonts/fonts.conf</include>\n` +
            `  <dir>${join(dir, "fonts", "fonts")}</dir>\n` +
            `  <cachedir>${join(dir, "fonts-cache")}</cachedir>\n</fontconfig>\n`,
        );
        await Deno.writeTextFile(done, PACKAGE_VERSION);
      }
    } finally {
      lock.close();
    }
  }
  const args = (chromium.args as string[]).filter((a) =>
    !UNSAFE_FLAG.test(a) && !SOFTWARE_GL_FLAG.test(a)
  );
  return {
    executablePath: exe,
    args: [...args, "--disable-gpu", ...QUIET_FLAGS],
    env: { FONTCONFIG_FILE: fontsConf },
    source: "npm:@sparticuz/chromium",
  };
}

let found: Promise<FoundBrowser> | null = null;

/**
 * Finds (or unpacks) a Chromium. Rejects with one line saying what is missing and how to
 * get it when none can be had.
 */
export function findBrowser(): Promise<FoundBrowser> {
  found ??= (async (): Promise<FoundBrowser> => {
    const flags = ["--headless", "--disable-gpu", ...QUIET_FLAGS];
    const explicit = Deno.env.get("FERRY_CHROMIUM");
    const system = SYSTEM_PATHS.find(isFile);
    if (explicit === "system") {
      if (!system) throw new Error(`FERRY_CHROMIUM=system: none at ${SYSTEM_PATHS.join(", ")}`);
      return { executablePath: system, args: flags, env: {}, source: "system" };
    }
    if (explicit && explicit !== "npm") {
      if (!isFile(explicit)) throw new Error(`FERRY_CHROMIUM=${explicit} is not a file`);
      return { executablePath: explicit, args: flags, env: {}, source: "FERRY_CHROMIUM" };
    }
    try {
      return await packaged(ferryCacheDir(`sparticuz-chromium-${PACKAGE_VERSION}`));
    } catch (e) {
      if (system && explicit !== "npm") {
        return { executablePath: system, args: flags, env: {}, source: "system" };
      }
      throw new Error(
        `no Chromium for the browser tests: the one in npm:@sparticuz/chromium@` +
          `${PACKAGE_VERSION} could not be unpacked (${(e as Error).message}) and none is at ` +
          `${SYSTEM_PATHS[0]}; install one ('apt-get install -y chromium') or set ` +
          `FERRY_CHROMIUM=/path/to/chromium`,
      );
    }
  })();
  return found;
}
