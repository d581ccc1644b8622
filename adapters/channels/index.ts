/**
 * Channel adapters: transports behind the Channel port, the migration URI parser, and the
 * rate-limited writer the migration engine sends through.
 *
 * @module
 */

export { formatMigrationUri, type MigrationUri, parseMigrationUri, UriError } from "./uri.ts";
export { ChannelConnectError, connectChannel } from "./connect.ts";
export { listenChannel } from "./listen.ts";
export {
  ChannelShutdownError,
  ChannelWriter,
  type ChannelWriterOptions,
} from "./channel_writer.ts";
export { MemoryChannel, memoryChannelPair } from "./memory_pair.ts";
export { ExecChannel, type ExecExit } from "./exec.ts";
export { FileChannel } from "./file.ts";
export { BrokenPipeError, ChannelClosedError } from "./errors.ts";
