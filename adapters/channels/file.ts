/**
 * `file:PATH` transport: outgoing writes the stream into PATH (created or truncated);
 * incoming reads it back. A file has no return path: an outgoing file channel reads as end
 * of stream at once, and an incoming one rejects writes.
 *
 * @module
 */

import type { Channel } from "../../domain/ports.ts";
import { ChannelClosedError } from "./errors.ts";

/** An open file as a Channel, in one direction. */
export class FileChannel implements Channel {
  /** The file's path as given. */
  readonly path: string;
  readonly #file: Deno.FsFile;
  readonly #direction: "outgoing" | "incoming";
  #closed = false;
  #writeClosed = false;

  /** Wraps an open file (owned from now on); use openFileChannel to open one. */
  constructor(file: Deno.FsFile, path: string, direction: "outgoing" | "incoming") {
    this.#file = file;
    this.path = path;
    this.#direction = direction;
  }

  /** Incoming: reads the file (`null` at its end). Outgoing: always `null`. */
  read(p: Uint8Array): Promise<number | null> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("read on a closed channel"));
    if (this.#direction === "outgoing") return Promise.resolve(null);
    return this.#file.read(p);
  }

  /** Outgoing: writes some of `p` into the file. Incoming: rejects. */
  write(p: Uint8Array): Promise<number> {
    if (this.#closed) return Promise.reject(new ChannelClosedError("write on a closed channel"));
    if (this.#direction === "incoming") {
      return Promise.reject(new ChannelClosedError(`file:${this.path} is opened for reading`));
    }
    if (this.#writeClosed) {
      return Promise.reject(new ChannelClosedError("write after closeWrite"));
    }
    return this.#file.write(p);
  }

  /** Outgoing: closes the file, so everything written is in it. Incoming: does nothing. */
  closeWrite(): Promise<void> {
    if (this.#closed) {
      return Promise.reject(new ChannelClosedError("closeWrite on a closed channel"));
    }
    if (this.#direction === "outgoing" && !this.#writeClosed) {
      this.#writeClosed = true;
      this.#closeFile();
    }
    return Promise.resolve();
  }

  /** Closes the file. Safe to call twice. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (!this.#writeClosed) this.#closeFile();
  }

  #closeFile(): void {
    try {
      this.#file.close();
    } catch {
      // Already closed underneath.
    }
  }
}

/** Opens `path` for `direction`: outgoing creates or truncates it, incoming reads it. */
export async function openFileChannel(
  path: string,
  direction: "outgoing" | "incoming",
): Promise<FileChannel> {
  const file = direction === "outgoing"
    ? await Deno.open(path, { write: true, create: true, truncate: true })
    : await Deno.open(path, { read: true });
  return new FileChannel(file, path, direction);
}
