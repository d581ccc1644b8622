/**
 * Where Ferry keeps what it can make again but would rather not: prepared WebAssembly modules
 * (adapters/wasm/wasm_guest.ts), the sample guests' builds (guests/build.ts), the tests'
 * unpacked Chromium. One directory per user, `$XDG_CACHE_HOME/ferry` or `~/.cache/ferry`, so
 * that every clone of the project on a machine shares it: each entry is named by the hash of
 * what made it, never rewritten, and written under a temporary name, then renamed.
 *
 * @module
 */

/** `$XDG_CACHE_HOME/ferry/SUB` (or `$HOME/.cache/ferry/SUB`, else under `$TMPDIR` or /tmp). */
export function ferryCacheDir(sub: string): string {
  const base = Deno.env.get("XDG_CACHE_HOME") ||
    `${Deno.env.get("HOME") || Deno.env.get("TMPDIR") || "/tmp"}/.cache`;
  return `${base}/ferry/${sub}`;
}
