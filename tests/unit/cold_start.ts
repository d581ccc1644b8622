/**
 * Issue 20, item 2: no warning box on a cold start. An npm package with a lifecycle script
 * (deno.lock marks it `"scripts": true`; today `@scarf/scarf`, a dependency of
 * `swagger-ui-dist`) makes Deno print a yellow "Ignored build scripts for packages" box,
 * because without a `node_modules` directory it cannot run the script. Deno prints it once
 * per project directory (it leaves a `.scripts-warned-HASH` file in the package's cache
 * directory), so a checkout that has started once never shows it again, but every fresh
 * clone does, on its very first `deno task start`. Naming the package in deno.json's
 * `allowScripts.deny` says the script is not wanted (scarf's is install telemetry) and keeps
 * Deno quiet about it.
 *
 * The test makes that first start happen again without downloading anything: a fresh
 * directory holding copies of deno.json and deno.lock is a new project to Deno, and a
 * private DENO_DIR of hard links to the npm packages already cached keeps its marker file out
 * of the shared cache. `deno cache` resolves the same module graph `deno run` does, without
 * running it.
 */
import assert from "node:assert/strict";

const ROOT = new URL("../../", import.meta.url);

/** The entry points a newcomer starts first: `deno task start` and `deno task ctl`. */
const ENTRIES = ["main.ts", "scripts/ctl.ts"];

const BOX = /Ignored build scripts for packages:\s*│?\s*npm:@scarf\/scarf/;

async function run(cmd: string, args: string[], env: Record<string, string> = {}) {
  const out = await new Deno.Command(cmd, {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const d = new TextDecoder();
  return { code: out.code, stdout: d.decode(out.stdout), stderr: d.decode(out.stderr) };
}

Deno.test("a fresh clone's first start shows no 'Ignored build scripts' box (deno.json allowScripts)", async () => {
  const config = JSON.parse(await Deno.readTextFile(new URL("deno.json", ROOT)));
  const lock = JSON.parse(await Deno.readTextFile(new URL("deno.lock", ROOT)));
  // Every locked package with a lifecycle script is decided on, not only the ones the
  // entry points below reach (a test or a task may reach others).
  const decided: string[] = [
    ...(config.allowScripts?.deny ?? []),
    ...(config.allowScripts?.allow ?? []),
  ];
  const withScripts = Object.entries(lock.npm as Record<string, { scripts?: boolean }>)
    .filter(([, p]) => p.scripts === true)
    .map(([id]) => id.slice(0, id.indexOf("@", 1)));
  assert.ok(withScripts.includes("@scarf/scarf"), "deno.lock marks scarf as having a script");
  for (const name of withScripts) {
    assert.ok(decided.includes(`npm:${name}`), `npm:${name} runs a script: allow or deny it`);
  }

  const info = JSON.parse((await run(Deno.execPath(), ["info", "--json"])).stdout);
  const sharedDir: string = info.denoDir;
  // Beside the shared cache, so the hard links stay on one file system.
  const tmp = await Deno.makeTempDir({
    dir: sharedDir.replace(/\/[^/]+\/?$/, ""),
    prefix: "ferry-cold-start-",
  });
  try {
    const linked = await run("cp", ["-al", `${sharedDir}/npm`, `${tmp}/npm`]);
    assert.equal(linked.code, 0, linked.stderr);
    await Deno.mkdir(`${tmp}/deno_dir`);
    await Deno.rename(`${tmp}/npm`, `${tmp}/deno_dir/npm`);
    const firstStart = async (name: string, cfg: unknown) => {
      await Deno.mkdir(`${tmp}/${name}`);
      await Deno.writeTextFile(`${tmp}/${name}/deno.json`, JSON.stringify(cfg));
      await Deno.copyFile(new URL("deno.lock", ROOT), `${tmp}/${name}/deno.lock`);
      const args = ["cache", "--config", `${tmp}/${name}/deno.json`, ...ENTRIES];
      const r = await run(Deno.execPath(), args, { DENO_DIR: `${tmp}/deno_dir` });
      assert.equal(r.code, 0, r.stderr);
      return r.stderr;
    };
    // Without the deny list the box appears: the check below can see it.
    const { allowScripts: _, ...without } = config;
    assert.match(await firstStart("without-deny", without), BOX);
    assert.doesNotMatch(await firstStart("clone", config), /Ignored build scripts|Warning/);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});
