/**
 * Unit tests in one module: the engine without sockets: the RAM loader, setup → active, a RAM
 * block that grows, postcopy, thresholds, wire v2 sections, the stream state and hostile streams
 * (10 000 per run). Pure tests (no agent process) live in tests/unit/ and run as a few modules
 * like this one, not one module each: `deno test` spends ~0.3 s of CPU starting every test module
 * (a fresh runtime), which for these small files was a sixth of the suite's CPU. One runs alone
 * with `deno test -A tests/unit/<name>.ts`.
 *
 * @module
 */
import "./unit/colo_arbiter.ts";
import "./unit/colo_ending.ts";
import "./unit/engine_activation.ts";
import "./unit/engine_colo.ts";
import "./unit/engine_colo_live.ts";
import "./unit/engine_colo_records.ts";
import "./unit/engine_disk_loader.ts";
import "./unit/engine_disk_runs.ts";
import "./unit/engine_memory.ts";
import "./unit/engine_multifd_rx.ts";
import "./unit/engine_output_compare.ts";
import "./unit/engine_postcopy.ts";
import "./unit/engine_postcopy_pacer.ts";
import "./unit/engine_ram_grow.ts";
import "./unit/warm_workers.ts";
import "./unit/engine_warm_up.ts";
import "./unit/engine_ram_loader.ts";
import "./unit/engine_signal.ts";
import "./unit/engine_stream_state.ts";
import "./unit/engine_threshold.ts";
import "./unit/hostile_decode.ts";
import "./unit/hostile_loader.ts";
import "./unit/hostile_pool.ts";
import "./unit/wire_sections.ts";
