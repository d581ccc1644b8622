/**
 * Ferry's migration wire format v2 (see docs/wire-format.md): frame table, pure encoders and
 * decoders, section records, validation against the receiver's state, the streaming frame
 * reader and the return path.
 *
 * @module
 */

export * from "./wire_error.ts";
export * from "./frames.ts";
export * from "./encode.ts";
export * from "./decode.ts";
export * from "./sections.ts";
export * from "./checks.ts";
export * from "./frame_reader.ts";
export * from "./return_path.ts";
export * from "./peer_reason.ts";
export * from "./colo.ts";
export * from "./ram_used.ts";
export * from "./colo_records.ts";
