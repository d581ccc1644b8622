/**
 * Unit tests in one module: channels: every transport (tcp, unix, exec, file, TLS and its trust
 * rules, the memory pair, the proxy) and the link watch. Pure tests (no agent process) live in
 * tests/unit/ and run as a few modules like this one, not one module each: `deno test` spends ~0.3
 * s of CPU starting every test module (a fresh runtime), which for these small files was a sixth of
 * the suite's CPU. One runs alone with `deno test -A tests/unit/<name>.ts`.
 *
 * @module
 */
import "./unit/channels_direct_io.ts";
import "./unit/channels_exec_file.ts";
import "./unit/channels_memory_pair.ts";
import "./unit/channels_proxy.ts";
import "./unit/channels_send_buffer.ts";
import "./unit/channels_socket.ts";
import "./unit/channels_tls.ts";
import "./unit/channels_tls_trust.ts";
import "./unit/channels_uri.ts";
import "./unit/channels_writer.ts";
import "./unit/link_watch.ts";
