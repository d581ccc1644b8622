/**
 * `exec:CMD` transport: the stream is a shell command's stdio (`sh -c CMD`).
 *
 * - Outgoing: our writes go to the command's stdin; our reads come from its stdout.
 * - Incoming: our reads come from the command's stdout; its stdin is /dev/null and writes
 *   reject (exec has no return path).
 *
 * Completion: `closeWrite()` closes the command's stdin and then resolves only after the
 * command has exited, rejecting if it exited unsuccessfully (with the tail of its stderr), so
 * once it resolves a file written by e.g. `exec:gzip -c > f` is complete. `waitExit()` gives
 * the exit status at any time. Like any pipe, an outgoing command's stdout must be read (or
 * stay under the pipe's 64 KiB) or the command stalls, and our writes with it.
 *
 * `close()` kills the command's whole process group (SIGKILL; the shell runs in a session of
 * its own, so a pipeline or a forked child dies with it) and releases its pipes; await
 * `waitExit()` afterwards to be sure it has been reaped. A write that fails because the
 * command stopped reading rejects with BrokenPipeError naming its exit status and stderr.
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";
import { BrokenPipeError, ChannelClosedError, osErrorText } from "./errors.ts";

/** How the command ended. `stderr` holds the last few KiB it wrote to stderr. */
export interface ExecExit {
  success: boolean;
  code: number;
  signal: Deno.Signal | null;
  stderr: string;
}

/** Most stderr text kept for error messages. */
const STDERR_TAIL = 4096;
/** After the command exits, how long to keep draining stderr held open by its children. */
const STDERR_GRACE_MS = 100;

/** A running `sh -c CMD` as a Channel. */
export class ExecChannel implements Channel {
  /** The shell command as given after `exec:`. */
  readonly command: string;
  readonly #child: Deno.ChildProcess;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array> | null;
  readonly #stdout: ReadableStreamDefaultReader<Uint8Array>;
  readonly #exit: Promise<ExecExit>;
  #leftover: Uint8Array | null = null;
  #stderrTail = "";
  #closed = false;
  #writeClosed = false;

  /** Spawns `sh -c command`; `direction` decides whether its stdin is ours to write. */
  constructor(command: string, direction: "outgoing" | "incoming") {
    this.command = command;
    this.#child = new Deno.Command("sh", {
      args: ["-c", command],
      stdin: direction === "outgoing" ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
      detached: true, // own session and process group: close() can kill every process in it
    }).spawn();
    this.#stdin = direction === "outgoing" ? this.#child.stdin.getWriter() : null;
    this.#stdout = this.#child.stdout.getReader();
    this.#exit = this.#watch();
  }

  /** Reads up to `p.length` bytes of the command's stdout; `null` at end of stream. */
  async read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) throw new ChannelClosedError("read on a closed channel");
    if (p.length === 0) return 0;
    let chunk = this.#leftover;
    this.#leftover = null;
    if (chunk === null) {
      const r = await this.#stdout.read();
      if (r.done) {
        if (this.#closed) throw new ChannelClosedError("channel closed during read");
        return null;
      }
      chunk = r.value;
    }
    const n = Math.min(p.length, chunk.length);
    p.set(n === chunk.length ? chunk : chunk.subarray(0, n));
    if (n < chunk.length) this.#leftover = chunk.subarray(n);
    return n;
  }

  /** Writes all of `p` to the command's stdin (resolves to `p.length`). */
  async write(p: Uint8Array): Promise<number> {
    if (this.#closed) throw new ChannelClosedError("write on a closed channel");
    if (this.#stdin === null) {
      throw new ChannelClosedError(
        `exec:${this.command} is an incoming channel; it takes no writes`,
      );
    }
    if (this.#writeClosed) throw new ChannelClosedError("write after closeWrite");
    try {
      await this.#stdin.write(p);
    } catch (err) {
      if (this.#closed) throw new ChannelClosedError("channel closed during write");
      const exit = await settledWithin(this.#exit, STDERR_GRACE_MS * 2);
      const why = exit === null ? osErrorText(err) : describeExit(exit);
      throw new BrokenPipeError(`exec command '${this.command}' stopped reading its input: ${why}`);
    }
    return p.length;
  }

  /**
   * Closes the command's stdin, then waits for the command to exit. Rejects if it exited
   * unsuccessfully. Incoming channels have no stdin: this only waits for the exit.
   */
  async closeWrite(): Promise<void> {
    if (this.#closed) throw new ChannelClosedError("closeWrite on a closed channel");
    if (this.#stdin !== null && !this.#writeClosed) {
      this.#writeClosed = true;
      await this.#stdin.close().catch(() => {}); // already broken: the exit status tells why
    }
    const exit = await this.#exit;
    if (!exit.success) throw new Error(`exec command '${this.command}' ${describeExit(exit)}`);
  }

  /** Resolves once the command has exited and been reaped (also after close()). */
  waitExit(): Promise<ExecExit> {
    return this.#exit;
  }

  /** Kills the command's process group and releases its pipes. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      Deno.kill(-this.#child.pid, "SIGKILL");
    } catch {
      // The whole group has exited already.
    }
    this.#leftover = null;
    this.#stdout.cancel().catch(() => {});
    this.#stdin?.abort().catch(() => {});
  }

  async #watch(): Promise<ExecExit> {
    const stderr = this.#drainStderr();
    const status = await this.#child.status;
    await stderr.finish();
    return {
      success: status.success,
      code: status.code,
      signal: status.signal,
      stderr: this.#stderrTail,
    };
  }

  #drainStderr(): { finish(): Promise<void> } {
    const reader = this.#child.stderr.getReader();
    const decoder = new TextDecoder();
    const done = (async () => {
      for (;;) {
        const r = await reader.read().catch(() => ({ done: true as const, value: undefined }));
        if (r.done) return;
        this.#stderrTail = (this.#stderrTail + decoder.decode(r.value, { stream: true }))
          .slice(-STDERR_TAIL);
      }
    })();
    return {
      // Children of the shell may hold stderr open after it exits: wait briefly, then stop.
      async finish() {
        let timer: ReturnType<typeof setTimeout> | undefined;
        const grace = new Promise<void>((resolve) => {
          timer = setTimeout(resolve, STDERR_GRACE_MS);
        });
        await Promise.race([done, grace]);
        clearTimeout(timer);
        await reader.cancel().catch(() => {});
        await done;
      },
    };
  }
}

/** `p`'s value if it settles within `ms` milliseconds, else null; leaves no timer behind. */
async function settledWithin<T>(p: Promise<T>, ms: number): Promise<T | null> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<null>((resolve) => {
    timer = setTimeout(() => resolve(null), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** "exited with status 1: <stderr tail>" or "was killed by SIGKILL". */
export function describeExit(exit: ExecExit): string {
  const how = exit.signal !== null
    ? `was killed by ${exit.signal}`
    : `exited with status ${exit.code}`;
  const tail = exit.stderr.trim();
  return tail === "" ? how : `${how}: ${tail}`;
}
