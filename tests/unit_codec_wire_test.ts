/**
 * Unit tests in one module: the wire format and the page codecs: frames, readers, return path,
 * XBZRLE, zlib, the codec pools. Pure tests (no agent process) live in tests/unit/ and run as a few
 * modules like this one, not one module each: `deno test` spends ~0.3 s of CPU starting every test
 * module (a fresh runtime), which for these small files was a sixth of the suite's CPU. One runs
 * alone with `deno test -A tests/unit/<name>.ts`.
 *
 * @module
 */
import "./unit/codec_page_cache.ts";
import "./unit/codec_pool.ts";
import "./unit/codec_threads.ts";
import "./unit/codec_xbzrle.ts";
import "./unit/codec_zlib.ts";
import "./unit/wire_checks.ts";
import "./unit/wire_colo_records.ts";
import "./unit/wire_codec.ts";
import "./unit/wire_disk.ts";
import "./unit/wire_frame_reader.ts";
import "./unit/wire_multifd_redirect.ts";
import "./unit/wire_peer_reason.ts";
import "./unit/wire_read_coalesce.ts";
import "./unit/wire_return_path.ts";
