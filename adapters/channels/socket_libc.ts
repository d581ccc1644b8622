/**
 * The libc socket calls the channels make through Deno's FFI, loaded once per thread: the
 * addresses and options of a socket (send_buffer.ts) and its synchronous reads and writes
 * (direct_io.ts). Linux only, and only with FFI allowed; elsewhere there is none (null).
 *
 * @module
 */

/** The calls, as Deno's FFI gives them. */
export type SocketLibc = {
  symbols: {
    getsockname(fd: number, addr: Uint8Array, len: Uint8Array): number;
    getpeername(fd: number, addr: Uint8Array, len: Uint8Array): number;
    setsockopt(fd: number, level: number, name: number, value: Uint8Array, len: number): number;
    getsockopt(fd: number, level: number, name: number, value: Uint8Array, len: Uint8Array): number;
    send(fd: number, buf: Uint8Array, len: bigint, flags: number): bigint;
    recv(fd: number, buf: Uint8Array, len: bigint, flags: number): bigint;
    __errno_location(): Deno.PointerValue;
  };
};

let lib: SocketLibc | null | undefined;

/** This thread's libc socket calls, or null (not Linux, no FFI permission, no libc). */
export function socketLibc(): SocketLibc | null {
  if (lib !== undefined) return lib;
  lib = null;
  if (Deno.build.os !== "linux") return lib;
  if (Deno.permissions.querySync({ name: "ffi" }).state !== "granted") return lib;
  try {
    lib = Deno.dlopen("libc.so.6", {
      getsockname: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      getpeername: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
      setsockopt: { parameters: ["i32", "i32", "i32", "buffer", "u32"], result: "i32" },
      getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
      send: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
      recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
      __errno_location: { parameters: [], result: "pointer" },
    }) as unknown as SocketLibc;
  } catch {
    lib = null;
  }
  return lib;
}
