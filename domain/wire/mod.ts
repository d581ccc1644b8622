/**
 * Ferry's migration wire format v1 (see docs/wire-format.md): frame table, pure encoders and
 * decoders, validation against the receiver's state, the streaming frame reader and the
 * return path.
 *
 * @module
 */

export * from "./wire_error.ts";
export * from "./frames.ts";
export * from "./encode.ts";
export * from "./decode.ts";
export * from "./checks.ts";
export * from "./frame_reader.ts";
export * from "./return_path.ts";
export * from "./peer_reason.ts";
